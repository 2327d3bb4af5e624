//! Go `encoding/json` rendering of OpenKruise's `SidecarContainer` (k8s.io/api v0.32 `Container`
//! plus the kruise fields): struct fields in Go declaration order, `omitempty` as Go applies it,
//! non-pointer structs always emitted. The SidecarSet hash is a sha256 of these exact bytes.
//!
//! The input is the serde JSON of the Rust types (k8s-openapi uses the same field names); fields Go
//! does not know are dropped, as Go's decoder drops them.

use serde_json::Value;
use std::fmt::Write as _;

/// Go type of a field.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    Int,
    Bool,
    /// `intstr.IntOrString` (zero value `0`).
    IntOrStr,
    /// `resource.Quantity` (zero value `"0"`; emitted in Go's canonical form).
    Quantity,
    List(&'static Ty),
    /// `map[string]T`, keys sorted.
    Map(&'static Ty),
    Obj(&'static [F]),
}

/// When Go leaves a field out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Omit {
    /// No `omitempty`: always written (the zero value when unset).
    Never,
    /// Pointer with `omitempty`: left out when nil.
    Nil,
    /// Pointer without `omitempty`: `null` when nil.
    Ptr,
    /// Value with `omitempty`: left out when nil or the zero value (`""`, `0`, `false`, empty).
    Empty,
}

#[derive(Clone, Copy)]
struct F {
    name: &'static str,
    ty: Ty,
    omit: Omit,
}

const fn f(name: &'static str, ty: Ty, omit: Omit) -> F {
    F { name, ty, omit }
}

use Omit::{Empty, Never, Nil, Ptr};
use Ty::{Bool, Int, IntOrStr, List, Map, Obj, Quantity, Str};

const STRINGS: Ty = List(&Str);

const OBJECT_FIELD_SELECTOR: &[F] = &[f("apiVersion", Str, Empty), f("fieldPath", Str, Never)];
const RESOURCE_FIELD_SELECTOR: &[F] = &[
    f("containerName", Str, Empty),
    f("resource", Str, Never),
    // a non-pointer struct: `omitempty` never drops it
    f("divisor", Quantity, Never),
];
const KEY_SELECTOR: &[F] = &[
    f("name", Str, Empty),
    f("key", Str, Never),
    f("optional", Bool, Nil),
];
const ENV_VAR_SOURCE: &[F] = &[
    f("fieldRef", Obj(OBJECT_FIELD_SELECTOR), Nil),
    f("resourceFieldRef", Obj(RESOURCE_FIELD_SELECTOR), Nil),
    f("configMapKeyRef", Obj(KEY_SELECTOR), Nil),
    f("secretKeyRef", Obj(KEY_SELECTOR), Nil),
];
const ENV_VAR: &[F] = &[
    f("name", Str, Never),
    f("value", Str, Empty),
    f("valueFrom", Obj(ENV_VAR_SOURCE), Nil),
];
const ENV_SOURCE_REF: &[F] = &[f("name", Str, Empty), f("optional", Bool, Nil)];
const ENV_FROM_SOURCE: &[F] = &[
    f("prefix", Str, Empty),
    f("configMapRef", Obj(ENV_SOURCE_REF), Nil),
    f("secretRef", Obj(ENV_SOURCE_REF), Nil),
];
const CONTAINER_PORT: &[F] = &[
    f("name", Str, Empty),
    f("hostPort", Int, Empty),
    f("containerPort", Int, Never),
    f("protocol", Str, Empty),
    f("hostIP", Str, Empty),
];
const RESOURCE_CLAIM: &[F] = &[f("name", Str, Never), f("request", Str, Empty)];
const RESOURCES: &[F] = &[
    f("limits", Map(&Quantity), Empty),
    f("requests", Map(&Quantity), Empty),
    f("claims", List(&Obj(RESOURCE_CLAIM)), Empty),
];
const RESIZE_POLICY: &[F] = &[
    f("resourceName", Str, Never),
    f("restartPolicy", Str, Never),
];
const VOLUME_MOUNT: &[F] = &[
    f("name", Str, Never),
    f("readOnly", Bool, Empty),
    f("recursiveReadOnly", Str, Nil),
    f("mountPath", Str, Never),
    f("subPath", Str, Empty),
    f("mountPropagation", Str, Nil),
    f("subPathExpr", Str, Empty),
];
const VOLUME_DEVICE: &[F] = &[f("name", Str, Never), f("devicePath", Str, Never)];
const EXEC: &[F] = &[f("command", STRINGS, Empty)];
const HTTP_HEADER: &[F] = &[f("name", Str, Never), f("value", Str, Never)];
const HTTP_GET: &[F] = &[
    f("path", Str, Empty),
    f("port", IntOrStr, Never),
    f("host", Str, Empty),
    f("scheme", Str, Empty),
    f("httpHeaders", List(&Obj(HTTP_HEADER)), Empty),
];
const TCP_SOCKET: &[F] = &[f("port", IntOrStr, Never), f("host", Str, Empty)];
// `service` is `*string` without omitempty (`+default=""`)
const GRPC: &[F] = &[f("port", Int, Never), f("service", Str, Ptr)];
const SLEEP: &[F] = &[f("seconds", Int, Never)];
const PROBE: &[F] = &[
    // ProbeHandler is embedded inline
    f("exec", Obj(EXEC), Nil),
    f("httpGet", Obj(HTTP_GET), Nil),
    f("tcpSocket", Obj(TCP_SOCKET), Nil),
    f("grpc", Obj(GRPC), Nil),
    f("initialDelaySeconds", Int, Empty),
    f("timeoutSeconds", Int, Empty),
    f("periodSeconds", Int, Empty),
    f("successThreshold", Int, Empty),
    f("failureThreshold", Int, Empty),
    f("terminationGracePeriodSeconds", Int, Nil),
];
const LIFECYCLE_HANDLER: &[F] = &[
    f("exec", Obj(EXEC), Nil),
    f("httpGet", Obj(HTTP_GET), Nil),
    f("tcpSocket", Obj(TCP_SOCKET), Nil),
    f("sleep", Obj(SLEEP), Nil),
];
const LIFECYCLE: &[F] = &[
    f("postStart", Obj(LIFECYCLE_HANDLER), Nil),
    f("preStop", Obj(LIFECYCLE_HANDLER), Nil),
];
const CAPABILITIES: &[F] = &[f("add", STRINGS, Empty), f("drop", STRINGS, Empty)];
const SE_LINUX: &[F] = &[
    f("user", Str, Empty),
    f("role", Str, Empty),
    f("type", Str, Empty),
    f("level", Str, Empty),
];
const WINDOWS: &[F] = &[
    f("gmsaCredentialSpecName", Str, Nil),
    f("gmsaCredentialSpec", Str, Nil),
    f("runAsUserName", Str, Nil),
    f("hostProcess", Bool, Nil),
];
const PROFILE: &[F] = &[f("type", Str, Never), f("localhostProfile", Str, Nil)];
const SECURITY_CONTEXT: &[F] = &[
    f("capabilities", Obj(CAPABILITIES), Nil),
    f("privileged", Bool, Nil),
    f("seLinuxOptions", Obj(SE_LINUX), Nil),
    f("windowsOptions", Obj(WINDOWS), Nil),
    f("runAsUser", Int, Nil),
    f("runAsGroup", Int, Nil),
    f("runAsNonRoot", Bool, Nil),
    f("readOnlyRootFilesystem", Bool, Nil),
    f("allowPrivilegeEscalation", Bool, Nil),
    f("procMount", Str, Nil),
    f("seccompProfile", Obj(PROFILE), Nil),
    f("appArmorProfile", Obj(PROFILE), Nil),
];

/// `corev1.Container` of k8s.io/api v0.32, in declaration order.
const CONTAINER: &[F] = &[
    f("name", Str, Never),
    f("image", Str, Empty),
    f("command", STRINGS, Empty),
    f("args", STRINGS, Empty),
    f("workingDir", Str, Empty),
    f("ports", List(&Obj(CONTAINER_PORT)), Empty),
    f("envFrom", List(&Obj(ENV_FROM_SOURCE)), Empty),
    f("env", List(&Obj(ENV_VAR)), Empty),
    f("resources", Obj(RESOURCES), Never),
    f("resizePolicy", List(&Obj(RESIZE_POLICY)), Empty),
    f("restartPolicy", Str, Nil),
    f("volumeMounts", List(&Obj(VOLUME_MOUNT)), Empty),
    f("volumeDevices", List(&Obj(VOLUME_DEVICE)), Empty),
    f("livenessProbe", Obj(PROBE), Nil),
    f("readinessProbe", Obj(PROBE), Nil),
    f("startupProbe", Obj(PROBE), Nil),
    f("lifecycle", Obj(LIFECYCLE), Nil),
    f("terminationMessagePath", Str, Empty),
    f("terminationMessagePolicy", Str, Empty),
    f("imagePullPolicy", Str, Empty),
    f("securityContext", Obj(SECURITY_CONTEXT), Nil),
    f("stdin", Bool, Empty),
    f("stdinOnce", Bool, Empty),
    f("tty", Bool, Empty),
];

const UPGRADE_STRATEGY: &[F] = &[
    f("upgradeType", Str, Empty),
    f("hotUpgradeEmptyImage", Str, Empty),
];
const SHARE_VOLUME_POLICY: &[F] = &[f("type", Str, Empty)];
const SOURCE_CONTAINER_NAME: &[F] = &[f("fieldRef", Obj(OBJECT_FIELD_SELECTOR), Nil)];
const TRANSFER_ENV: &[F] = &[
    f("sourceContainerName", Str, Empty),
    f("sourceContainerNameFrom", Obj(SOURCE_CONTAINER_NAME), Nil),
    f("envName", Str, Empty),
    f("envNames", STRINGS, Empty),
];
const RESOURCE_EXPRS: &[F] = &[f("cpu", Str, Empty), f("memory", Str, Empty)];
const RESOURCES_EXPR: &[F] = &[
    f("limits", Obj(RESOURCE_EXPRS), Nil),
    f("requests", Obj(RESOURCE_EXPRS), Nil),
];
const RESOURCES_POLICY: &[F] = &[
    f("targetContainersMode", Str, Never),
    f("targetContainersNameRegex", Str, Empty),
    f("resourcesExpr", Obj(RESOURCES_EXPR), Never),
];
/// The fields `SidecarContainer` adds after the inline `Container`.
const SIDECAR_EXTRA: &[F] = &[
    f("podInjectPolicy", Str, Empty),
    f("upgradeStrategy", Obj(UPGRADE_STRATEGY), Never),
    f("shareVolumePolicy", Obj(SHARE_VOLUME_POLICY), Never),
    f("shareVolumeDevicePolicy", Obj(SHARE_VOLUME_POLICY), Nil),
    f("transferEnv", List(&Obj(TRANSFER_ENV)), Empty),
    f("resourcesPolicy", Obj(RESOURCES_POLICY), Nil),
];

/// Go JSON of a list of `SidecarContainer` given as serde JSON (`null` for a nil slice).
pub(crate) fn sidecar_containers(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('{');
                let mut first = true;
                write_fields(&mut out, CONTAINER, item, &mut first);
                write_fields(&mut out, SIDECAR_EXTRA, item, &mut first);
                out.push('}');
            }
            out.push(']');
        }
        _ => out.push_str("null"),
    }
    out
}

fn write_fields(out: &mut String, fields: &[F], obj: &Value, first: &mut bool) {
    for fd in fields {
        let v = obj.get(fd.name).unwrap_or(&Value::Null);
        let skip = match fd.omit {
            Never | Ptr => false,
            Nil => v.is_null(),
            Empty => is_empty(v),
        };
        if skip {
            continue;
        }
        if !*first {
            out.push(',');
        }
        *first = false;
        write_str(out, fd.name);
        out.push(':');
        if v.is_null() && fd.omit == Ptr {
            out.push_str("null");
        } else if v.is_null() {
            write_zero(out, fd.ty);
        } else {
            write_value(out, fd.ty, v);
        }
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn write_zero(out: &mut String, ty: Ty) {
    match ty {
        Str => out.push_str("\"\""),
        Int | IntOrStr => out.push('0'),
        Bool => out.push_str("false"),
        Quantity => out.push_str("\"0\""),
        List(_) | Map(_) => out.push_str("null"),
        Obj(fields) => write_value(out, Obj(fields), &Value::Object(Default::default())),
    }
}

fn write_value(out: &mut String, ty: Ty, v: &Value) {
    match (ty, v) {
        (_, Value::Null) => write_zero(out, ty),
        (Obj(fields), _) => {
            out.push('{');
            let mut first = true;
            write_fields(out, fields, v, &mut first);
            out.push('}');
        }
        (List(inner), Value::Array(items)) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, *inner, item);
            }
            out.push(']');
        }
        (Map(inner), Value::Object(m)) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write_value(out, *inner, &m[k]);
            }
            out.push('}');
        }
        (Quantity, Value::String(s)) => {
            write_str(out, &canonical_quantity(s).unwrap_or_else(|| s.clone()));
        }
        (_, Value::String(s)) => write_str(out, s),
        (_, Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                let _ = write!(out, "{n}");
            }
        }
        (_, Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
        // A shape Go could not have decoded into this type: keep serde's rendering.
        (_, other) => out.push_str(&other.to_string()),
    }
}

/// The string Go's `resource.Quantity` marshals to after parsing `s`: the input itself when it is
/// already canonical, else the canonical form (`1000m` → `1`, `0.5` → `500m`, `1024Mi` → `1Gi`,
/// `1.5Gi` → `1536Mi`). `None` for forms this does not reproduce (signs, more than 18 digits,
/// sub-nano precision), which are then written as given.
fn canonical_quantity(s: &str) -> Option<String> {
    let idx = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(idx);
    let (num, denom) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = num.bytes().chain(denom.bytes()).all(|b| b.is_ascii_digit());
    if (num.is_empty() && denom.is_empty()) || !all_digits || num.len() + denom.len() > 18 {
        return None;
    }
    let binary = |e: u32| Some((true, e as i32, false));
    let decimal = |e: i32| Some((false, e, false));
    let (is_binary, exp, exponent_fmt) = match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        e if e.starts_with(['e', 'E']) => e[1..].parse::<i32>().ok().map(|x| (false, x, true)),
        _ => None,
    }?;
    let shifted = format!("{num}{denom}");
    let digits: i128 = shifted.parse().ok()?;
    let frac = i32::try_from(denom.len()).ok()?;
    if is_binary {
        let int_len = i32::try_from(num.len()).ok()?;
        let precision = 15 - int_len - exp * 3 / 10 - 1;
        if denom.is_empty() && precision >= 0 && digits & 7 != 0 {
            return Some(s.to_owned());
        }
        let units = digits.checked_shl(u32::try_from(exp).ok()?)?;
        if units == 0 {
            return Some("0".to_owned());
        }
        let den = 10i128.checked_pow(u32::try_from(frac).ok()?)?;
        if units % den != 0 {
            return decimal_canonical(units, -frac, false);
        }
        let v = units / den;
        if v.abs() < 1024 {
            return decimal_canonical(v, 0, false);
        }
        let (mut a, mut e) = (v, 0usize);
        let suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
        while a % 1024 == 0 && e + 1 < suffixes.len() {
            a /= 1024;
            e += 1;
        }
        return Some(format!("{a}{}", suffixes[e]));
    }
    let scale = exp - frac;
    if scale < -9 {
        return None;
    }
    if scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0') {
        return Some(s.to_owned());
    }
    decimal_canonical(digits, scale, exponent_fmt)
}

/// Go's `AsCanonicalBytes`: trailing zeros folded into the exponent, the exponent brought down to a
/// multiple of 3, then the SI suffix (or `e<n>` for the exponent format).
fn decimal_canonical(mut m: i128, mut e: i32, exponent_fmt: bool) -> Option<String> {
    if m == 0 {
        return Some("0".to_owned());
    }
    while m % 10 == 0 {
        m /= 10;
        e += 1;
    }
    match e.rem_euclid(3) {
        1 => {
            m = m.checked_mul(10)?;
            e -= 1;
        }
        2 => {
            m = m.checked_mul(100)?;
            e -= 2;
        }
        _ => {}
    }
    let suffix = if exponent_fmt {
        if e == 0 {
            String::new()
        } else {
            format!("e{e}")
        }
    } else {
        match e {
            -9 => "n",
            -6 => "u",
            -3 => "m",
            0 => "",
            3 => "k",
            6 => "M",
            9 => "G",
            12 => "T",
            15 => "P",
            18 => "E",
            _ => return None,
        }
        .to_owned()
    };
    Some(format!("{m}{suffix}"))
}

/// A Go JSON string: `<`, `>`, `&`, U+2028 and U+2029 are escaped as `\u00XX`/`\u20XX`, control
/// characters as `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX`.
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_field_order_and_omitempty() {
        let v = json!([{
            "image": "img",
            "name": "c",
            "stdin": false,
            "env": [{"value": "", "name": "A"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v1"}}}],
            "ports": [{"containerPort": 80, "protocol": "TCP", "hostPort": 0}],
            "resources": {"requests": {"memory": "1Gi", "cpu": "100m"}},
            "unknownField": 1,
            "upgradeStrategy": {"upgradeType": "ColdUpgrade"},
            "podInjectPolicy": "BeforeAppContainer"
        }]);
        assert_eq!(
            sidecar_containers(&v),
            r#"[{"name":"c","image":"img","ports":[{"containerPort":80,"protocol":"TCP"}],"env":[{"name":"A"},{"name":"B","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.name"}}}],"resources":{"requests":{"cpu":"100m","memory":"1Gi"}},"podInjectPolicy":"BeforeAppContainer","upgradeStrategy":{"upgradeType":"ColdUpgrade"},"shareVolumePolicy":{}}]"#
        );
    }

    #[test]
    fn quantities_in_go_canonical_form() {
        for (given, want) in [
            ("100m", "100m"),
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("2", "2"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("0", "0"),
            ("01", "1"),
            ("1e3", "1e3"),
            ("100Mi", "100Mi"),
            ("128Mi", "128Mi"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("0.5Ki", "512"),
            ("1Ki", "1Ki"),
            ("512Ki", "512Ki"),
            ("1G", "1G"),
            ("1000M", "1G"),
        ] {
            assert_eq!(canonical_quantity(given).as_deref(), Some(want), "{given}");
        }
        assert_eq!(canonical_quantity("-1"), None);
        let v = json!([{"name": "c", "resources": {"limits": {"cpu": "0.5", "memory": "1024Mi"}}}]);
        assert_eq!(
            sidecar_containers(&v),
            r#"[{"name":"c","resources":{"limits":{"cpu":"500m","memory":"1Gi"}},"upgradeStrategy":{},"shareVolumePolicy":{}}]"#
        );
    }

    #[test]
    fn nil_list_and_go_escapes() {
        assert_eq!(sidecar_containers(&Value::Null), "null");
        let v = json!([{"name": "a<b>&\n", "resources": {"limits": {}}}]);
        assert_eq!(
            sidecar_containers(&v),
            r#"[{"name":"a\u003cb\u003e\u0026\n","resources":{},"upgradeStrategy":{},"shareVolumePolicy":{}}]"#
        );
    }

    #[test]
    fn pointers_keep_zero_values_and_structs_get_zero_fields() {
        let v = json!([{
            "name": "c",
            "securityContext": {"runAsUser": 0, "privileged": false},
            "livenessProbe": {"httpGet": {"path": "/"}, "timeoutSeconds": 0},
            "readinessProbe": {"grpc": {"port": 9000}},
            "env": [{"name": "R", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}]
        }]);
        assert_eq!(
            sidecar_containers(&v),
            r#"[{"name":"c","env":[{"name":"R","valueFrom":{"resourceFieldRef":{"resource":"limits.cpu","divisor":"0"}}}],"resources":{},"livenessProbe":{"httpGet":{"path":"/","port":0}},"readinessProbe":{"grpc":{"port":9000,"service":null}},"securityContext":{"privileged":false,"runAsUser":0},"upgradeStrategy":{},"shareVolumePolicy":{}}]"#
        );
    }
}
