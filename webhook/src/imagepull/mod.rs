//! Admission of ImagePullJob, ImageListPullJob and NodeImage: validation (`validate_*`, spec
//! `imagepull.md` §1.6 plus decision 2) and defaulting (`default_*`, §1.5). Pure functions over the
//! typed objects; the HTTP handler that calls them lives elsewhere.

pub mod reference;

use crate::field::FieldError;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kruise_crds::keys::imagepull as keys;
use kruise_crds::{
    CompletionPolicyType, IMAGE_LIST_PULL_JOB_MAX_IMAGES, IMAGE_PULL_DEFAULT_BACKOFF_LIMIT,
    IMAGE_PULL_DEFAULT_TIMEOUT_SECONDS, ImageListPullJob, ImagePullJob, ImagePullJobTemplate,
    ImagePullPolicy, ImageTagPullPolicy, NODE_IMAGE_MAX_IMAGES, NodeImage, PullPolicy,
};
use regex::Regex;
use std::collections::BTreeSet;
use std::sync::LazyLock;

// ---------------------------------------------------------------------------------------------
// Validation

/// Validates an ImagePullJob; `old` is the stored object on update (`spec.pullSecrets` is immutable).
pub fn validate_imagepulljob(job: &ImagePullJob, old: Option<&ImagePullJob>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_image("spec.image", &job.spec.image, &mut errs);
    validate_template(&job.spec.template, &mut errs);
    if let Some(old) = old
        && old.spec.template.pull_secrets != job.spec.template.pull_secrets
    {
        errs.push(FieldError::forbidden(
            "spec.pullSecrets",
            "spec.pullSecrets is immutable",
        ));
    }
    errs
}

/// Validates an ImageListPullJob (`pullSecrets` stay mutable here, as in OpenKruise).
pub fn validate_imagelistpulljob(
    job: &ImageListPullJob,
    _old: Option<&ImageListPullJob>,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let images = &job.spec.images;
    if images.is_empty() {
        errs.push(FieldError::required(
            "spec.images",
            "images can not be empty",
        ));
    }
    if images.len() > IMAGE_LIST_PULL_JOB_MAX_IMAGES {
        errs.push(FieldError::invalid(
            "spec.images",
            images.len(),
            format!("the number of images can not be more than {IMAGE_LIST_PULL_JOB_MAX_IMAGES}"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, image) in images.iter().enumerate() {
        let path = format!("spec.images[{i}]");
        if !seen.insert(image.as_str()) {
            errs.push(FieldError::duplicate(path, image));
            continue;
        }
        validate_image(&path, image, &mut errs);
    }
    // Children copy the template verbatim, so a template the ImagePullJob webhook would refuse is
    // refused here too (OpenKruise lets it through and the children then fail to create).
    validate_template(&job.spec.template, &mut errs);
    errs
}

/// Validates a NodeImage spec (every writer must give each tag `createdAt`, `pullPolicy` and a TTL).
pub fn validate_nodeimage(ni: &NodeImage) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(images) = &ni.spec.images else {
        return errs;
    };
    if images.len() > NODE_IMAGE_MAX_IMAGES {
        errs.push(FieldError::invalid(
            "spec.images",
            images.len(),
            format!("spec images length can not be more than {NODE_IMAGE_MAX_IMAGES}"),
        ));
    }
    for (name, spec) in images {
        let ipath = format!("spec.images[{name}]");
        if name.is_empty() {
            errs.push(FieldError::required(ipath, "image name can not be empty"));
            continue;
        }
        let mut seen = BTreeSet::new();
        for (i, tag) in spec.tags.iter().enumerate() {
            let tpath = format!("{ipath}.tags[{i}]");
            if tag.tag.is_empty() {
                errs.push(FieldError::required(
                    format!("{tpath}.tag"),
                    format!("tag for image {name} can not be empty"),
                ));
                continue;
            }
            if !seen.insert(tag.tag.as_str()) {
                errs.push(FieldError::duplicate(format!("{tpath}.tag"), &tag.tag));
            }
            if tag.created_at.is_none() {
                errs.push(FieldError::required(
                    format!("{tpath}.createdAt"),
                    "createdAt must be set",
                ));
            }
            if let Some(v) = tag.version
                && v < 0
            {
                errs.push(FieldError::invalid(
                    format!("{tpath}.version"),
                    v,
                    "version can not be less than 0",
                ));
            }
            match &tag.pull_policy {
                None => errs.push(FieldError::required(
                    format!("{tpath}.pullPolicy"),
                    "pullPolicy must be set",
                )),
                Some(p) if p.ttl_seconds_after_finished.is_none() => {
                    errs.push(FieldError::required(
                        format!("{tpath}.pullPolicy.ttlSecondsAfterFinished"),
                        "ttlSecondsAfterFinished must be set",
                    ))
                }
                Some(_) => {}
            }
        }
    }
    errs
}

fn validate_image(path: &str, image: &str, errs: &mut Vec<FieldError>) {
    if image.is_empty() {
        errs.push(FieldError::required(path, "image can not be empty"));
        return;
    }
    if let Err(e) = reference::parse(image) {
        errs.push(FieldError::invalid(
            path,
            image,
            format!("invalid image: {e}"),
        ));
    }
}

fn validate_template(t: &ImagePullJobTemplate, errs: &mut Vec<FieldError>) {
    if let Some(sel) = &t.selector {
        let has_labels = sel.match_labels.is_some() || sel.match_expressions.is_some();
        if let Some(names) = &sel.names {
            if has_labels {
                errs.push(FieldError::forbidden(
                    "spec.selector",
                    "can not set both names and labelSelector in this spec.selector",
                ));
            }
            let mut seen = BTreeSet::new();
            for (i, n) in names.iter().enumerate() {
                let p = format!("spec.selector.names[{i}]");
                if n.is_empty() {
                    errs.push(FieldError::required(p, "node name can not be empty"));
                } else if !seen.insert(n.as_str()) {
                    errs.push(FieldError::duplicate(p, n));
                }
            }
        }
        validate_label_selector("spec.selector", &sel.label_selector(), errs);
        if t.pod_selector.is_some() {
            errs.push(FieldError::forbidden(
                "spec.podSelector",
                "can not set both selector and podSelector",
            ));
        }
    }
    if let Some(ps) = &t.pod_selector {
        validate_label_selector("spec.podSelector", &ps.label_selector(), errs);
    }
    match &t.parallelism {
        Some(IntOrString::Int(n)) if *n < 0 => errs.push(FieldError::invalid(
            "spec.parallelism",
            n,
            "must be greater than or equal to 0",
        )),
        Some(IntOrString::String(s)) if parse_count(s).is_none() => errs.push(FieldError::invalid(
            "spec.parallelism",
            s,
            "must be a non-negative integer (percentages are not supported)",
        )),
        _ => {}
    }
    let timeout = t
        .pull_policy
        .as_ref()
        .and_then(|p| p.timeout_seconds)
        .unwrap_or(IMAGE_PULL_DEFAULT_TIMEOUT_SECONDS);
    if let Some(p) = &t.pull_policy {
        if let Some(ts) = p.timeout_seconds
            && ts < 1
        {
            errs.push(FieldError::invalid(
                "spec.pullPolicy.timeoutSeconds",
                ts,
                "must be greater than 0",
            ));
        }
        if let Some(b) = p.backoff_limit
            && b < 0
        {
            errs.push(FieldError::invalid(
                "spec.pullPolicy.backoffLimit",
                b,
                "must be greater than or equal to 0",
            ));
        }
    }
    let cp = &t.completion_policy;
    match cp.type_ {
        None => errs.push(FieldError::required(
            "spec.completionPolicy.type",
            "supported values: \"Always\", \"Never\"",
        )),
        Some(CompletionPolicyType::Always) => {
            if let Some(d) = cp.active_deadline_seconds {
                if d < 1 {
                    errs.push(FieldError::invalid(
                        "spec.completionPolicy.activeDeadlineSeconds",
                        d,
                        "must be greater than 0",
                    ));
                } else if d < i64::from(timeout) {
                    errs.push(FieldError::invalid(
                        "spec.completionPolicy.activeDeadlineSeconds",
                        d,
                        format!(
                            "completionPolicy.activeDeadlineSeconds must be greater than pullPolicy.timeoutSeconds(default {IMAGE_PULL_DEFAULT_TIMEOUT_SECONDS})"
                        ),
                    ));
                }
            }
            if let Some(ttl) = cp.ttl_seconds_after_finished
                && ttl < 0
            {
                errs.push(FieldError::invalid(
                    "spec.completionPolicy.ttlSecondsAfterFinished",
                    ttl,
                    "must be greater than or equal to 0",
                ));
            }
        }
        Some(CompletionPolicyType::Never) => {
            let detail = "activeDeadlineSeconds and ttlSecondsAfterFinished can only work with Always CompletionPolicyType";
            if cp.active_deadline_seconds.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.completionPolicy.activeDeadlineSeconds",
                    detail,
                ));
            }
            if cp.ttl_seconds_after_finished.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.completionPolicy.ttlSecondsAfterFinished",
                    detail,
                ));
            }
        }
    }
}

/// A base-10 non-negative integer in a string (`parallelism: "3"`); `None` for anything else.
pub fn parse_count(s: &str) -> Option<i32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

static QUALIFIED_NAME: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").ok());
static DNS_SUBDOMAIN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").ok()
});

fn is_match(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(s))
}

fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !is_match(&DNS_SUBDOMAIN, p))
    {
        return Some("prefix part must be a lowercase RFC 1123 subdomain".into());
    }
    if name.is_empty() || name.len() > 63 || !is_match(&QUALIFIED_NAME, name) {
        return Some(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)"
                .into(),
        );
    }
    None
}

fn label_value_ok(v: &str) -> bool {
    v.is_empty() || (v.len() <= 63 && is_match(&QUALIFIED_NAME, v))
}

/// Checks a label selector the way `metav1.LabelSelectorAsSelector` does.
pub fn validate_label_selector(path: &str, sel: &LabelSelector, errs: &mut Vec<FieldError>) {
    for (k, v) in sel.match_labels.iter().flatten() {
        if let Some(why) = label_key_error(k) {
            errs.push(FieldError::invalid(format!("{path}.matchLabels"), k, why));
        }
        if !label_value_ok(v) {
            errs.push(FieldError::invalid(
                format!("{path}.matchLabels"),
                v,
                "a valid label value must be 63 characters or less and consist of alphanumeric characters, '-', '_' or '.'",
            ));
        }
    }
    for (i, req) in sel.match_expressions.iter().flatten().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        if let Some(why) = label_key_error(&req.key) {
            errs.push(FieldError::invalid(format!("{p}.key"), &req.key, why));
        }
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        format!("{p}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
                for (j, v) in values.iter().enumerate() {
                    if !label_value_ok(v) {
                        errs.push(FieldError::invalid(
                            format!("{p}.values[{j}]"),
                            v,
                            "a valid label value must be 63 characters or less and consist of alphanumeric characters, '-', '_' or '.'",
                        ));
                    }
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        format!("{p}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => errs.push(FieldError::not_supported(
                format!("{p}.operator"),
                op,
                &["In", "NotIn", "Exists", "DoesNotExist"],
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Defaulting

fn default_pull_policy(p: &mut Option<PullPolicy>) {
    let p = p.get_or_insert_with(PullPolicy::default);
    p.timeout_seconds
        .get_or_insert(IMAGE_PULL_DEFAULT_TIMEOUT_SECONDS);
    p.backoff_limit
        .get_or_insert(IMAGE_PULL_DEFAULT_BACKOFF_LIMIT);
}

/// Defaults an ImagePullJob: `completionPolicy.type` Always, `pullPolicy` {600 s, 3},
/// `imagePullPolicy` IfNotPresent, and (on create, as OpenKruise's v1alpha1 path does) the
/// protection finalizer.
pub fn default_imagepulljob(job: &mut ImagePullJob, on_create: bool) {
    let t = &mut job.spec.template;
    t.completion_policy
        .type_
        .get_or_insert(CompletionPolicyType::Always);
    default_pull_policy(&mut t.pull_policy);
    t.image_pull_policy
        .get_or_insert(ImagePullPolicy::IfNotPresent);
    if on_create {
        let fins = job.metadata.finalizers.get_or_insert_with(Vec::new);
        if !fins.iter().any(|f| f == keys::PROTECTION_FINALIZER) {
            fins.push(keys::PROTECTION_FINALIZER.to_string());
        }
    }
}

/// Defaults an ImageListPullJob: like [`default_imagepulljob`] but `imagePullPolicy` is left as is
/// and no finalizer is added.
pub fn default_imagelistpulljob(job: &mut ImageListPullJob) {
    let t = &mut job.spec.template;
    t.completion_policy
        .type_
        .get_or_insert(CompletionPolicyType::Always);
    default_pull_policy(&mut t.pull_policy);
}

/// Defaults a NodeImage: every tag gets `createdAt` (= `now`) and `pullPolicy` {600 s, 3}; spec and
/// status tags are sorted by tag.
pub fn default_nodeimage(ni: &mut NodeImage, now: &Time) {
    for spec in ni.spec.images.iter_mut().flat_map(|m| m.values_mut()) {
        for tag in &mut spec.tags {
            tag.created_at.get_or_insert_with(|| now.clone());
            let p = tag
                .pull_policy
                .get_or_insert_with(ImageTagPullPolicy::default);
            p.timeout_seconds
                .get_or_insert(IMAGE_PULL_DEFAULT_TIMEOUT_SECONDS);
            p.backoff_limit
                .get_or_insert(IMAGE_PULL_DEFAULT_BACKOFF_LIMIT);
        }
        spec.tags.sort_by(|a, b| a.tag.cmp(&b.tag));
    }
    if let Some(status) = &mut ni.status {
        for st in status
            .image_statuses
            .iter_mut()
            .flat_map(|m| m.values_mut())
        {
            st.tags.sort_by(|a, b| a.tag.cmp(&b.tag));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use kruise_crds::{
        CompletionPolicy, ImageListPullJobSpec, ImagePullJobNodeSelector, ImagePullJobPodSelector,
        ImagePullJobSpec, ImagePullPhase, ImageSpec, ImageStatus, ImageTagSpec, ImageTagStatus,
        NodeImageSpec, NodeImageStatus,
    };
    use std::collections::BTreeMap;

    fn job(image: &str) -> ImagePullJob {
        let mut j = ImagePullJob::new(
            "j",
            ImagePullJobSpec {
                image: image.into(),
                template: ImagePullJobTemplate::default(),
            },
        );
        default_imagepulljob(&mut j, true);
        j
    }

    fn rendered(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaulted_job_is_valid() {
        let j = job("nginx:1.25");
        assert_eq!(validate_imagepulljob(&j, None), vec![]);
        let t = &j.spec.template;
        assert_eq!(
            t.completion_policy.type_,
            Some(CompletionPolicyType::Always)
        );
        assert_eq!(
            t.pull_policy,
            Some(PullPolicy {
                timeout_seconds: Some(600),
                backoff_limit: Some(3)
            })
        );
        assert_eq!(t.image_pull_policy, Some(ImagePullPolicy::IfNotPresent));
        assert_eq!(
            j.metadata.finalizers,
            Some(vec![keys::PROTECTION_FINALIZER.to_string()])
        );
        // defaulting twice does not duplicate the finalizer or change set values
        let mut again = j.clone();
        default_imagepulljob(&mut again, true);
        assert_eq!(again.spec, j.spec);
        assert_eq!(again.metadata, j.metadata);
    }

    #[test]
    fn job_table() {
        type Edit = fn(&mut ImagePullJob);
        let cases: Vec<(&str, Edit, Vec<&str>)> = vec![
            (
                "empty image",
                |j| j.spec.image.clear(),
                vec!["spec.image: Required value: image can not be empty"],
            ),
            (
                "bad image",
                |j| j.spec.image = "Nginx".into(),
                vec![
                    r#"spec.image: Invalid value: "Nginx": invalid image: invalid reference format: repository name (library/Nginx) must be lowercase"#,
                ],
            ),
            (
                "digest ok",
                |j| {
                    j.spec.image = "nginx@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()
                },
                vec![],
            ),
            (
                "names and labels",
                |j| {
                    j.spec.template.selector = Some(ImagePullJobNodeSelector {
                        names: Some(vec!["a".into(), "a".into()]),
                        match_labels: Some(BTreeMap::from([("k".into(), "v".into())])),
                        match_expressions: None,
                    })
                },
                vec![
                    "spec.selector: Forbidden: can not set both names and labelSelector in this spec.selector",
                    r#"spec.selector.names[1]: Duplicate value: "a""#,
                ],
            ),
            (
                "selector and podSelector",
                |j| {
                    j.spec.template.selector = Some(ImagePullJobNodeSelector::default());
                    j.spec.template.pod_selector = Some(ImagePullJobPodSelector::default());
                },
                vec!["spec.podSelector: Forbidden: can not set both selector and podSelector"],
            ),
            (
                "bad expression",
                |j| {
                    j.spec.template.pod_selector = Some(ImagePullJobPodSelector {
                        match_labels: None,
                        match_expressions: Some(vec![
                            LabelSelectorRequirement {
                                key: "a".into(),
                                operator: "In".into(),
                                values: None,
                            },
                            LabelSelectorRequirement {
                                key: "b".into(),
                                operator: "Has".into(),
                                values: None,
                            },
                            LabelSelectorRequirement {
                                key: "c".into(),
                                operator: "Exists".into(),
                                values: Some(vec!["x".into()]),
                            },
                        ]),
                    })
                },
                vec![
                    "spec.podSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                    r#"spec.podSelector.matchExpressions[1].operator: Unsupported value: "Has": supported values: "In", "NotIn", "Exists", "DoesNotExist""#,
                    "spec.podSelector.matchExpressions[2].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ],
            ),
            (
                "negative parallelism",
                |j| j.spec.template.parallelism = Some(IntOrString::Int(-1)),
                vec!["spec.parallelism: Invalid value: -1: must be greater than or equal to 0"],
            ),
            (
                "percent parallelism",
                |j| j.spec.template.parallelism = Some(IntOrString::String("50%".into())),
                vec![
                    r#"spec.parallelism: Invalid value: "50%": must be a non-negative integer (percentages are not supported)"#,
                ],
            ),
            (
                "string parallelism ok",
                |j| j.spec.template.parallelism = Some(IntOrString::String("4".into())),
                vec![],
            ),
            (
                "deadline below timeout",
                |j| j.spec.template.completion_policy.active_deadline_seconds = Some(599),
                vec![
                    "spec.completionPolicy.activeDeadlineSeconds: Invalid value: 599: completionPolicy.activeDeadlineSeconds must be greater than pullPolicy.timeoutSeconds(default 600)",
                ],
            ),
            (
                "deadline equal timeout",
                |j| j.spec.template.completion_policy.active_deadline_seconds = Some(600),
                vec![],
            ),
            (
                "never with deadline and ttl",
                |j| {
                    j.spec.template.completion_policy = CompletionPolicy {
                        type_: Some(CompletionPolicyType::Never),
                        active_deadline_seconds: Some(1000),
                        ttl_seconds_after_finished: Some(10),
                    }
                },
                vec![
                    "spec.completionPolicy.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds and ttlSecondsAfterFinished can only work with Always CompletionPolicyType",
                    "spec.completionPolicy.ttlSecondsAfterFinished: Forbidden: activeDeadlineSeconds and ttlSecondsAfterFinished can only work with Always CompletionPolicyType",
                ],
            ),
            (
                "type missing",
                |j| j.spec.template.completion_policy.type_ = None,
                vec![
                    r#"spec.completionPolicy.type: Required value: supported values: "Always", "Never""#,
                ],
            ),
            (
                "negative backoff",
                |j| {
                    j.spec.template.pull_policy = Some(PullPolicy {
                        timeout_seconds: Some(10),
                        backoff_limit: Some(-1),
                    })
                },
                vec![
                    "spec.pullPolicy.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
                ],
            ),
        ];
        for (name, edit, want) in cases {
            let mut j = job("nginx");
            edit(&mut j);
            assert_eq!(rendered(&validate_imagepulljob(&j, None)), want, "{name}");
        }
    }

    #[test]
    fn pull_secrets_are_immutable_but_image_is_not() {
        let old = job("nginx");
        let mut new = old.clone();
        new.spec.image = "nginx:2".into();
        assert_eq!(validate_imagepulljob(&new, Some(&old)), vec![]);
        new.spec.template.pull_secrets = Some(vec!["s".into()]);
        assert_eq!(
            rendered(&validate_imagepulljob(&new, Some(&old))),
            vec!["spec.pullSecrets: Forbidden: spec.pullSecrets is immutable"]
        );
    }

    #[test]
    fn list_job_images() {
        let mut l = ImageListPullJob::new(
            "l",
            ImageListPullJobSpec {
                images: vec![
                    "nginx".into(),
                    "busybox:1".into(),
                    "nginx".into(),
                    "a//b".into(),
                ],
                template: ImagePullJobTemplate::default(),
            },
        );
        default_imagelistpulljob(&mut l);
        assert_eq!(l.spec.template.image_pull_policy, None);
        assert_eq!(
            rendered(&validate_imagelistpulljob(&l, None)),
            vec![
                r#"spec.images[2]: Duplicate value: "nginx""#,
                r#"spec.images[3]: Invalid value: "a//b": invalid image: invalid reference format"#,
            ]
        );
        l.spec.images.clear();
        assert_eq!(
            rendered(&validate_imagelistpulljob(&l, None)),
            vec!["spec.images: Required value: images can not be empty"]
        );
        l.spec.images = (0..256).map(|i| format!("img{i}")).collect();
        assert_eq!(
            rendered(&validate_imagelistpulljob(&l, None)),
            vec!["spec.images: Invalid value: 256: the number of images can not be more than 255"]
        );
    }

    fn tag(t: &str) -> ImageTagSpec {
        ImageTagSpec {
            tag: t.into(),
            ..Default::default()
        }
    }

    #[test]
    fn nodeimage_defaults_then_requires_ttl() {
        let now = Time(jiff::Timestamp::from_second(1_700_000_000).unwrap());
        let mut ni = NodeImage::new(
            "n1",
            NodeImageSpec {
                images: Some(BTreeMap::from([(
                    "nginx".to_string(),
                    ImageSpec {
                        tags: vec![tag("b"), tag("a")],
                        ..Default::default()
                    },
                )])),
            },
        );
        ni.status = Some(NodeImageStatus {
            image_statuses: Some(BTreeMap::from([(
                "nginx".to_string(),
                ImageStatus {
                    tags: ["z", "y"]
                        .iter()
                        .map(|t| ImageTagStatus {
                            tag: (*t).into(),
                            phase: ImagePullPhase::Pulling,
                            progress: None,
                            start_time: None,
                            completion_time: None,
                            version: None,
                            image_id: None,
                            message: None,
                        })
                        .collect(),
                },
            )])),
            ..Default::default()
        });
        default_nodeimage(&mut ni, &now);
        let tags = &ni.spec.images.as_ref().unwrap()["nginx"].tags;
        assert_eq!(tags[0].tag, "a");
        assert_eq!(tags[1].created_at, Some(now.clone()));
        assert_eq!(
            tags[0].pull_policy,
            Some(ImageTagPullPolicy {
                timeout_seconds: Some(600),
                backoff_limit: Some(3),
                ..Default::default()
            })
        );
        let st = &ni.status.as_ref().unwrap().image_statuses.as_ref().unwrap()["nginx"].tags;
        assert_eq!(st[0].tag, "y");
        assert_eq!(
            rendered(&validate_nodeimage(&ni)),
            vec![
                "spec.images[nginx].tags[0].pullPolicy.ttlSecondsAfterFinished: Required value: ttlSecondsAfterFinished must be set",
                "spec.images[nginx].tags[1].pullPolicy.ttlSecondsAfterFinished: Required value: ttlSecondsAfterFinished must be set",
            ]
        );
        let images = ni.spec.images.as_mut().unwrap();
        let spec = images.get_mut("nginx").unwrap();
        for t in &mut spec.tags {
            t.pull_policy.as_mut().unwrap().ttl_seconds_after_finished = Some(300);
        }
        spec.tags.push(tag("a"));
        spec.tags[2].created_at = Some(now.clone());
        spec.tags[2].pull_policy = Some(ImageTagPullPolicy {
            ttl_seconds_after_finished: Some(1),
            ..Default::default()
        });
        spec.tags[1].version = Some(-1);
        spec.tags[0].created_at = None;
        images.insert(String::new(), ImageSpec::default());
        assert_eq!(
            rendered(&validate_nodeimage(&ni)),
            vec![
                "spec.images[]: Required value: image name can not be empty",
                "spec.images[nginx].tags[0].createdAt: Required value: createdAt must be set",
                "spec.images[nginx].tags[1].version: Invalid value: -1: version can not be less than 0",
                r#"spec.images[nginx].tags[2].tag: Duplicate value: "a""#,
            ]
        );
    }
}
