//! `resourcesPolicy` (spec §2.7): a sidecar's resources computed at pod creation from the pod's
//! target containers, through OpenKruise's small expression language (`+ - * /`, `max`, `min`,
//! numbers, percentages and k8s quantities, one variable `cpu` or `memory`). Values are exact
//! ([`kruise_crds::quantity::Quantity`], nano-units): `100m` and `0.1` are the same number and
//! sums do not drift as `f64` did.

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kruise_crds::quantity::{Quantity as Exact, QuantityError};
use kruise_crds::sidecarset::{ResourceExprs, ResourcesPolicy, TargetContainersMode};
use regex::Regex;
use std::collections::{BTreeMap, HashSet};

/// Longest resources expression accepted, in bytes. OpenKruise sets no limit, but its examples are
/// tens of characters (`max(cpu*50%, 50m)`); the bound keeps validation and injection cheap.
pub const MAX_EXPRESSION_LEN: usize = 1024;
/// Deepest nesting of parentheses, `max()`/`min()` calls and unary minus accepted. The parser is
/// recursive: without the bound a few KB of `(` overflow the worker's stack and abort the manager.
pub const MAX_EXPRESSION_DEPTH: usize = 64;

/// Why a resourcesPolicy cannot be applied or is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourcesError {
    /// The name regex does not compile.
    #[error("invalid regex pattern: {0}")]
    Regex(String),
    /// No pod container matches the regex (the pod is refused).
    #[error("no containers match the regex pattern {0:?}")]
    NoTargets(String),
    /// An expression does not parse or evaluate.
    #[error("invalid expression: {0}")]
    Expression(String),
    /// An expression is longer than [`MAX_EXPRESSION_LEN`] bytes.
    #[error(
        "the expression is {len} bytes long, more than the {max} allowed; shorten it",
        max = MAX_EXPRESSION_LEN
    )]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// An expression nests deeper than [`MAX_EXPRESSION_DEPTH`].
    #[error(
        "the expression nests parentheses, max()/min() calls or unary minus more than {max} deep; flatten it",
        max = MAX_EXPRESSION_DEPTH
    )]
    TooDeep,
}

/// Computes and sets `c.resources` from `policy` over the targets of `pod`: its native-sidecar init
/// containers and all containers matched by the regex, except names any matched SidecarSet declares.
pub fn apply_resources_policy(
    c: &mut Container,
    policy: &ResourcesPolicy,
    pod: &Pod,
    sidecar_names: &HashSet<String>,
) -> Result<(), ResourcesError> {
    let pattern = policy
        .target_containers_name_regex
        .clone()
        .unwrap_or_else(|| ".*".to_owned());
    let re = Regex::new(&pattern).map_err(|e| ResourcesError::Regex(e.to_string()))?;
    let spec = pod.spec.as_ref();
    let targets: Vec<&Container> = spec
        .into_iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .filter(|i| i.restart_policy.as_deref() == Some("Always"))
                .chain(s.containers.iter())
        })
        .filter(|t| !sidecar_names.contains(&t.name) && re.is_match(&t.name))
        .collect();
    if targets.is_empty() {
        return Err(ResourcesError::NoTargets(pattern));
    }
    let mode = policy.target_containers_mode;
    let mut out = ResourceRequirements::default();
    for resource in ["cpu", "memory"] {
        let exprs = &policy.resources_expr;
        if let Some(expr) = pick(exprs.limits.as_ref(), resource)
            && let Some(total) = aggregate(&targets, mode, resource, true)?
        {
            let v = eval_for(expr, total)?;
            out.limits
                .get_or_insert_with(BTreeMap::new)
                .insert(resource.to_owned(), format_quantity(resource, v));
        }
        if let Some(expr) = pick(exprs.requests.as_ref(), resource)
            && let Some(total) = aggregate(&targets, mode, resource, false)?
        {
            let v = eval_for(expr, total)?;
            out.requests
                .get_or_insert_with(BTreeMap::new)
                .insert(resource.to_owned(), format_quantity(resource, v));
        }
    }
    c.resources = Some(out);
    Ok(())
}

fn pick<'a>(exprs: Option<&'a ResourceExprs>, resource: &str) -> Option<&'a str> {
    let e = exprs?;
    let v = if resource == "cpu" { &e.cpu } else { &e.memory };
    v.as_deref().filter(|s| !s.is_empty())
}

/// Sum or max of the targets' limits (`None` = unlimited: some target has no limit) or requests (a
/// missing request counts as 0).
fn aggregate(
    targets: &[&Container],
    mode: TargetContainersMode,
    resource: &str,
    limits: bool,
) -> Result<Option<Exact>, ResourcesError> {
    let mut acc = Exact::default();
    for t in targets {
        let r = t.resources.as_ref();
        let list = if limits {
            r.and_then(|r| r.limits.as_ref())
        } else {
            r.and_then(|r| r.requests.as_ref())
        };
        let v = match list.and_then(|l| l.get(resource)) {
            Some(q) => parse_quantity(&q.0)?,
            None if limits => return Ok(None),
            None => Exact::default(),
        };
        acc = match mode {
            TargetContainersMode::Sum => acc
                .checked_add(v)
                .map_err(|e| quantity_error(&q_text(&v), e))?,
            TargetContainersMode::Max => acc.max(v),
        };
    }
    Ok(Some(acc))
}

fn q_text(v: &Exact) -> String {
    v.to_string()
}

fn quantity_error(what: &str, e: QuantityError) -> ResourcesError {
    ResourcesError::Expression(format!("{what}: {e}"))
}

fn eval_for(expr: &str, value: Exact) -> Result<Exact, ResourcesError> {
    let var = if expr.contains("memory") {
        "memory"
    } else {
        "cpu"
    };
    evaluate(expr, var, value)
}

/// Renders a computed value: cpu as milli-cores, memory as bytes (both rounded half away from
/// zero), in k8s canonical form.
fn format_quantity(resource: &str, v: Exact) -> Quantity {
    if resource == "cpu" {
        let milli = v.round_to(3);
        if milli % 1000 == 0 {
            Quantity(decimal_si(milli / 1000))
        } else {
            Quantity(format!("{milli}m"))
        }
    } else {
        Quantity(binary_si(v.round_to(0)))
    }
}

fn decimal_si(mut n: i128) -> String {
    let suffixes = ["", "k", "M", "G", "T", "P", "E"];
    let mut i = 0;
    while n != 0 && n % 1000 == 0 && i + 1 < suffixes.len() {
        n /= 1000;
        i += 1;
    }
    format!("{n}{}", suffixes[i])
}

fn binary_si(mut n: i128) -> String {
    let suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let mut i = 0;
    while n != 0 && n % 1024 == 0 && i + 1 < suffixes.len() {
        n /= 1024;
        i += 1;
    }
    format!("{n}{}", suffixes[i])
}

/// Parses a k8s quantity (`50m`, `1.5`, `100Mi`, `2G`, `1e3`) exactly.
pub fn parse_quantity(s: &str) -> Result<Exact, ResourcesError> {
    Exact::parse(s.trim()).map_err(|e| ResourcesError::Expression(e.to_string()))
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(Exact),
    Ident(String),
    Op(char),
}

fn tokenize(expr: &str) -> Result<Vec<Tok>, ResourcesError> {
    let bad = |m: &str| ResourcesError::Expression(format!("{expr}: {m}"));
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let num: String = chars[start..i].iter().collect();
            let suf_start = i;
            while i < chars.len() && chars[i].is_ascii_alphabetic() {
                i += 1;
            }
            let suffix: String = chars[suf_start..i].iter().collect();
            if i < chars.len() && chars[i] == '%' && suffix.is_empty() {
                i += 1;
                let n = Exact::parse(&num).map_err(|_| bad("bad number"))?;
                let pct = n
                    .checked_div(Exact::from_units(100))
                    .map_err(|e| bad(&e.to_string()))?;
                out.push(Tok::Num(pct));
            } else {
                out.push(Tok::Num(parse_quantity(&format!("{num}{suffix}"))?));
            }
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if "+-*/(),".contains(c) {
            out.push(Tok::Op(c));
            i += 1;
        } else {
            return Err(bad(&format!("unexpected character {c:?}")));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    /// Nesting of `factor` calls: every recursion of the grammar goes through `factor`.
    depth: usize,
    var: &'a str,
    value: Exact,
    expr: &'a str,
}

impl Parser<'_> {
    fn err(&self, m: &str) -> ResourcesError {
        ResourcesError::Expression(format!("{}: {m}", self.expr))
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn eat(&mut self, op: char) -> bool {
        if self.peek() == Some(&Tok::Op(op)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn num(&self, r: Result<Exact, QuantityError>) -> Result<Exact, ResourcesError> {
        r.map_err(|e| self.err(&e.to_string()))
    }
    fn expr(&mut self) -> Result<Exact, ResourcesError> {
        let mut v = self.term()?;
        loop {
            if self.eat('+') {
                let t = self.term()?;
                v = self.num(v.checked_add(t))?;
            } else if self.eat('-') {
                let t = self.term()?;
                v = self.num(v.checked_sub(t))?;
            } else {
                return Ok(v);
            }
        }
    }
    fn term(&mut self) -> Result<Exact, ResourcesError> {
        let mut v = self.factor()?;
        loop {
            if self.eat('*') {
                let f = self.factor()?;
                v = self.num(v.checked_mul(f))?;
            } else if self.eat('/') {
                let d = self.factor()?;
                v = self.num(v.checked_div(d))?;
            } else {
                return Ok(v);
            }
        }
    }
    fn factor(&mut self) -> Result<Exact, ResourcesError> {
        if self.depth >= MAX_EXPRESSION_DEPTH {
            return Err(ResourcesError::TooDeep);
        }
        self.depth += 1;
        let v = self.factor_inner();
        self.depth -= 1;
        v
    }
    fn factor_inner(&mut self) -> Result<Exact, ResourcesError> {
        if self.eat('-') {
            let f = self.factor()?;
            return self.num(f.checked_neg());
        }
        if self.eat('(') {
            let v = self.expr()?;
            if !self.eat(')') {
                return Err(self.err("missing ')'"));
            }
            return Ok(v);
        }
        match self.peek().cloned() {
            Some(Tok::Num(n)) => {
                self.pos += 1;
                Ok(n)
            }
            Some(Tok::Ident(id)) => {
                self.pos += 1;
                if id == self.var {
                    return Ok(self.value);
                }
                if id != "max" && id != "min" {
                    return Err(self.err(&format!("unknown identifier {id:?}")));
                }
                if !self.eat('(') {
                    return Err(self.err("expected '('"));
                }
                let mut args = vec![self.expr()?];
                while self.eat(',') {
                    args.push(self.expr()?);
                }
                if !self.eat(')') {
                    return Err(self.err("missing ')'"));
                }
                let fold = if id == "max" { Exact::max } else { Exact::min };
                let first = args[0];
                Ok(args.into_iter().fold(first, fold))
            }
            _ => Err(self.err("unexpected end or token")),
        }
    }
}

/// Evaluates `expr` with variable `var` bound to `value`.
pub fn evaluate(expr: &str, var: &str, value: Exact) -> Result<Exact, ResourcesError> {
    if expr.len() > MAX_EXPRESSION_LEN {
        return Err(ResourcesError::TooLong { len: expr.len() });
    }
    let toks = tokenize(expr)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        var,
        value,
        expr,
    };
    let v = p.expr()?;
    if p.pos != p.toks.len() {
        return Err(p.err("trailing input"));
    }
    Ok(v)
}

/// Checks an expression parses (validation): evaluated with the variable set to 1.
pub fn check_expression(expr: &str) -> Result<(), ResourcesError> {
    let var = if expr.contains("memory") {
        "memory"
    } else {
        "cpu"
    };
    evaluate(expr, var, Exact::from_units(1)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use kruise_crds::sidecarset::ResourcesExpr;

    fn q(s: &str) -> Quantity {
        Quantity(s.into())
    }

    fn app(name: &str, limits: &[(&str, &str)], requests: &[(&str, &str)]) -> Container {
        let map = |kv: &[(&str, &str)]| {
            if kv.is_empty() {
                None
            } else {
                Some(kv.iter().map(|(k, v)| ((*k).to_owned(), q(v))).collect())
            }
        };
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements {
                limits: map(limits),
                requests: map(requests),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn policy(mode: TargetContainersMode, cpu: &str) -> ResourcesPolicy {
        ResourcesPolicy {
            target_containers_mode: mode,
            target_containers_name_regex: None,
            resources_expr: ResourcesExpr {
                limits: Some(ResourceExprs {
                    cpu: Some(cpu.into()),
                    memory: None,
                }),
                requests: Some(ResourceExprs {
                    cpu: Some(cpu.into()),
                    memory: Some("memory*50%".into()),
                }),
            },
        }
    }

    fn pod(containers: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn x(s: &str) -> Exact {
        Exact::parse(s).unwrap()
    }

    #[test]
    fn expressions() {
        assert_eq!(
            evaluate("max(cpu*50%, 50m)", "cpu", x("0.2")).unwrap(),
            x("100m")
        );
        assert_eq!(
            evaluate("max(cpu*50%, 50m)", "cpu", x("0.05")).unwrap(),
            x("50m")
        );
        assert_eq!(evaluate("(1+2)*3 - 4/2", "cpu", x("0")).unwrap(), x("7"));
        assert_eq!(
            evaluate("min(memory, 100Mi)", "memory", x("1e12")).unwrap(),
            x("104857600")
        );
        assert!(evaluate("cpu +", "cpu", x("1")).is_err());
        assert!(evaluate("foo(cpu)", "cpu", x("1")).is_err());
        assert!(
            evaluate("cpu/0", "cpu", x("1"))
                .unwrap_err()
                .to_string()
                .contains("division by zero")
        );
        assert!(check_expression("max(cpu*50%, 50m)").is_ok());
    }

    /// e2e worked examples of spec §2.7.
    #[test]
    fn e2e_examples() {
        let p = pod(vec![app(
            "main",
            &[("cpu", "200m"), ("memory", "200Mi")],
            &[("cpu", "50m"), ("memory", "100Mi")],
        )]);
        let mut c = Container::default();
        let pol = policy(TargetContainersMode::Sum, "max(cpu*50%, 50m)");
        apply_resources_policy(&mut c, &pol, &p, &HashSet::new()).unwrap();
        let r = c.resources.unwrap();
        assert_eq!(r.limits.unwrap()["cpu"], q("100m"));
        let req = r.requests.unwrap();
        assert_eq!(req["cpu"], q("50m"));
        assert_eq!(req["memory"], q("50Mi"));

        let p = pod(vec![
            app("a", &[], &[("cpu", "50m")]),
            app("b", &[], &[("cpu", "100m")]),
            app("sidecar", &[], &[("cpu", "4")]),
        ]);
        let mut c = Container::default();
        let names = HashSet::from(["sidecar".to_owned()]);
        apply_resources_policy(&mut c, &pol, &p, &names).unwrap();
        let r = c.resources.unwrap();
        // a target without a cpu limit makes the limit unlimited: no limit is computed
        assert!(r.limits.is_none());
        assert_eq!(r.requests.unwrap()["cpu"], q("75m"));
    }

    #[test]
    fn no_targets_and_bad_regex() {
        let p = pod(vec![app("main", &[], &[])]);
        let mut pol = policy(TargetContainersMode::Max, "cpu");
        pol.target_containers_name_regex = Some("^envoy$".into());
        assert_eq!(
            apply_resources_policy(&mut Container::default(), &pol, &p, &HashSet::new()),
            Err(ResourcesError::NoTargets("^envoy$".into()))
        );
        pol.target_containers_name_regex = Some("(".into());
        assert!(matches!(
            apply_resources_policy(&mut Container::default(), &pol, &p, &HashSet::new()),
            Err(ResourcesError::Regex(_))
        ));
    }

    /// 14 KB of `(` used to overflow the worker's stack (the whole manager aborted); now both the
    /// length and the nesting are refused with an error naming the limit.
    #[test]
    fn deep_or_long_expressions_are_refused_not_crashing() {
        let long = "(".repeat(14 * 1024);
        assert_eq!(
            check_expression(&long),
            Err(ResourcesError::TooLong { len: 14 * 1024 })
        );
        assert!(
            check_expression(&long)
                .unwrap_err()
                .to_string()
                .contains("more than the 1024 allowed")
        );
        let nested = |n: usize| format!("{}cpu{}", "(".repeat(n), ")".repeat(n));
        assert!(check_expression(&nested(MAX_EXPRESSION_DEPTH - 1)).is_ok());
        assert_eq!(
            check_expression(&nested(MAX_EXPRESSION_DEPTH)),
            Err(ResourcesError::TooDeep)
        );
        let minus = format!("{}cpu", "-".repeat(500));
        assert_eq!(check_expression(&minus), Err(ResourcesError::TooDeep));
        let calls = format!("{}cpu{}", "max(".repeat(100), ")".repeat(100));
        assert_eq!(check_expression(&calls), Err(ResourcesError::TooDeep));
        // long flat expressions within the length limit still work
        let flat = vec!["cpu"; 200].join("+");
        assert_eq!(evaluate(&flat, "cpu", x("1")).unwrap(), x("200"));
        // the pod-creation path is bounded too, not only validation
        let mut pol = policy(TargetContainersMode::Sum, &"(".repeat(5000));
        pol.resources_expr.requests = None;
        let p = pod(vec![app("main", &[("cpu", "1")], &[])]);
        assert_eq!(
            apply_resources_policy(&mut Container::default(), &pol, &p, &HashSet::new()),
            Err(ResourcesError::TooLong { len: 5000 })
        );
    }

    #[test]
    fn quantity_formats() {
        assert_eq!(format_quantity("cpu", x("1")), q("1"));
        assert_eq!(format_quantity("cpu", x("0.25")), q("250m"));
        assert_eq!(format_quantity("cpu", x("0.0005")), q("1m"));
        assert_eq!(format_quantity("memory", x("1073741824")), q("1Gi"));
        assert_eq!(format_quantity("memory", x("1000")), q("1000"));
        assert_eq!(
            parse_quantity("1.5Gi").unwrap(),
            Exact::from_units(1_610_612_736)
        );
    }

    /// `100m`, `0.1`, `1Ki` and `1e3` are exact values: the same number however written, and
    /// sums of many small ones do not drift (f64 made 0.1 × 3 = 0.30000000000000004).
    #[test]
    fn quantities_are_exact() {
        assert_eq!(
            parse_quantity("100m").unwrap(),
            parse_quantity("0.1").unwrap()
        );
        assert_eq!(parse_quantity("1Ki").unwrap(), Exact::from_units(1024));
        assert_eq!(parse_quantity("1e3").unwrap(), Exact::from_units(1000));
        assert_eq!(evaluate("0.1+0.2", "cpu", x("0")).unwrap(), x("0.3"));
        assert_eq!(evaluate("cpu*3", "cpu", x("0.1")).unwrap(), x("300m"));
        // ten targets of 100m summed are exactly 1 cpu
        let p = pod((0..10)
            .map(|i| app(&format!("c{i}"), &[("cpu", "100m")], &[("cpu", "0.1")]))
            .collect());
        let mut pol = policy(TargetContainersMode::Sum, "cpu");
        pol.resources_expr.requests.as_mut().unwrap().memory = None;
        let mut c = Container::default();
        apply_resources_policy(&mut c, &pol, &p, &HashSet::new()).unwrap();
        let r = c.resources.unwrap();
        assert_eq!(r.limits.unwrap()["cpu"], q("1"));
        assert_eq!(r.requests.unwrap()["cpu"], q("1"));
        // a result too large to compute is an error naming the expression, not a wrapped number
        let err = evaluate("memory*memory", "memory", x("1Ei"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("memory*memory: quantity out of range"),
            "{err}"
        );
    }
}
