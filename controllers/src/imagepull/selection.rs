//! Which NodeImages a job pulls on (spec `imagepull.md` §2.2) and which jobs a NodeImage event
//! concerns (§2.9). Pure: the caller passes the NodeImages (and, in podSelector mode, the pods).

use super::{Error, Result};
use k8s_openapi::api::core::v1::Pod;
use kruise_crds::{ImagePullJobTemplate, NodeImage};
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How a job picks its nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeSelection {
    /// No selector: every NodeImage (new nodes included).
    All,
    /// `selector.names`: exactly these NodeImages (missing ones are skipped).
    Names(BTreeSet<String>),
    /// `selector.matchLabels/matchExpressions` over NodeImage labels (empty = all).
    Labels(Selector),
    /// `podSelector`: the nodes running active pods (in the job's namespace) that match.
    Pods(Selector),
}

impl NodeSelection {
    /// Reads the selection of a job template.
    pub fn of(t: &ImagePullJobTemplate) -> Result<Self> {
        if let Some(ps) = &t.pod_selector {
            return Selector::try_from(ps.label_selector())
                .map(NodeSelection::Pods)
                .map_err(|e| Error::Selector(e.0));
        }
        match &t.selector {
            None => Ok(NodeSelection::All),
            Some(s) => match &s.names {
                Some(names) => Ok(NodeSelection::Names(names.iter().cloned().collect())),
                None => Selector::try_from(s.label_selector())
                    .map(NodeSelection::Labels)
                    .map_err(|e| Error::Selector(e.0)),
            },
        }
    }
}

/// A pod counts for podSelector mode while it is scheduled, not finished and not being deleted.
pub fn pod_is_active_on_node(pod: &Pod) -> Option<&str> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded") | Some("Failed")) {
        return None;
    }
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// The NodeImages a job selects, sorted by name. `pods` are the pods of the job's namespace (only
/// read in podSelector mode).
pub fn select_node_images(
    sel: &NodeSelection,
    node_images: &[Arc<NodeImage>],
    pods: &[Pod],
) -> Vec<Arc<NodeImage>> {
    let empty = BTreeMap::new();
    let mut out: Vec<Arc<NodeImage>> = match sel {
        NodeSelection::All => node_images.to_vec(),
        NodeSelection::Names(names) => node_images
            .iter()
            .filter(|n| names.contains(&n.name_any()))
            .cloned()
            .collect(),
        NodeSelection::Labels(s) => node_images
            .iter()
            .filter(|n| s.matches(n.metadata.labels.as_ref().unwrap_or(&empty)))
            .cloned()
            .collect(),
        NodeSelection::Pods(s) => {
            let nodes: BTreeSet<&str> = pods
                .iter()
                .filter(|p| s.matches(p.metadata.labels.as_ref().unwrap_or(&empty)))
                .filter_map(pod_is_active_on_node)
                .collect();
            node_images
                .iter()
                .filter(|n| nodes.contains(n.name_any().as_str()))
                .cloned()
                .collect()
        }
    };
    out.sort_by_key(|n| n.name_any());
    out
}

/// Whether a NodeImage event should wake a job (§2.9): podSelector jobs always (their match depends
/// on pods we do not watch), all-nodes jobs always, names jobs when listed, label jobs when the
/// labels match. Unlike OpenKruise, an empty label selector matches here too (it selects all nodes,
/// so new nodes must wake it).
pub fn node_image_concerns(sel: &NodeSelection, ni: &NodeImage) -> bool {
    match sel {
        NodeSelection::All | NodeSelection::Pods(_) => true,
        NodeSelection::Names(names) => names.contains(&ni.name_any()),
        NodeSelection::Labels(s) => {
            s.matches(ni.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, Time};
    use kruise_crds::{ImagePullJobNodeSelector, ImagePullJobPodSelector, NodeImageSpec};

    fn ni(name: &str, labels: &[(&str, &str)]) -> Arc<NodeImage> {
        let mut n = NodeImage::new(name, NodeImageSpec::default());
        n.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        Arc::new(n)
    }

    fn pod(name: &str, node: &str, app: &str, phase: &str, deleting: bool) -> Pod {
        Pod {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
                deletion_timestamp: deleting.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    fn names(v: &[Arc<NodeImage>]) -> Vec<String> {
        v.iter().map(|n| n.name_any()).collect()
    }

    #[test]
    fn selection_table() {
        let nodes = vec![
            ni("c", &[("zone", "b")]),
            ni("a", &[("zone", "a")]),
            ni("b", &[("zone", "a"), ("gpu", "true")]),
        ];
        let pods = vec![
            pod("p1", "c", "web", "Running", false),
            pod("p2", "a", "web", "Succeeded", false),
            pod("p3", "b", "web", "Running", true),
            pod("p4", "b", "db", "Running", false),
            pod("p5", "", "web", "Pending", false),
            pod("p6", "gone", "web", "Running", false),
        ];
        let t = |selector, pod_selector| ImagePullJobTemplate {
            selector,
            pod_selector,
            ..Default::default()
        };
        let cases: Vec<(&str, ImagePullJobTemplate, Vec<&str>)> = vec![
            (
                "no selector = all, sorted",
                t(None, None),
                vec!["a", "b", "c"],
            ),
            (
                "names, missing skipped",
                t(
                    Some(ImagePullJobNodeSelector {
                        names: Some(vec!["c".into(), "zz".into()]),
                        ..Default::default()
                    }),
                    None,
                ),
                vec!["c"],
            ),
            (
                "empty names = none",
                t(
                    Some(ImagePullJobNodeSelector {
                        names: Some(vec![]),
                        ..Default::default()
                    }),
                    None,
                ),
                vec![],
            ),
            (
                "empty label selector = all",
                t(Some(ImagePullJobNodeSelector::default()), None),
                vec!["a", "b", "c"],
            ),
            (
                "labels",
                t(
                    Some(ImagePullJobNodeSelector {
                        match_labels: Some(BTreeMap::from([("zone".into(), "a".into())])),
                        match_expressions: Some(vec![LabelSelectorRequirement {
                            key: "gpu".into(),
                            operator: "DoesNotExist".into(),
                            values: None,
                        }]),
                        names: None,
                    }),
                    None,
                ),
                vec!["a"],
            ),
            (
                "pods: active, scheduled, existing node",
                t(
                    None,
                    Some(ImagePullJobPodSelector {
                        match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                        match_expressions: None,
                    }),
                ),
                vec!["c"],
            ),
        ];
        for (name, tmpl, want) in cases {
            let sel = NodeSelection::of(&tmpl).unwrap();
            assert_eq!(
                names(&select_node_images(&sel, &nodes, &pods)),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn bad_selector_is_an_error_and_events_concern_the_right_jobs() {
        let bad = ImagePullJobTemplate {
            selector: Some(ImagePullJobNodeSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "k".into(),
                    operator: "Nope".into(),
                    values: None,
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(NodeSelection::of(&bad), Err(Error::Selector(_))));
        let n = ni("a", &[("zone", "a")]);
        let names = NodeSelection::Names(BTreeSet::from(["b".to_string()]));
        assert!(!node_image_concerns(&names, &n));
        assert!(node_image_concerns(&NodeSelection::All, &n));
        let empty = NodeSelection::of(&ImagePullJobTemplate {
            selector: Some(ImagePullJobNodeSelector::default()),
            ..Default::default()
        })
        .unwrap();
        assert!(node_image_concerns(&empty, &n));
        let zone_b = NodeSelection::Labels(
            Selector::try_from(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                    match_labels: Some(BTreeMap::from([("zone".into(), "b".into())])),
                    match_expressions: None,
                },
            )
            .unwrap(),
        );
        assert!(!node_image_concerns(&zone_b, &n));
    }
}
