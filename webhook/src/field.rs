//! Field errors in the API server's own words: every rejection names the field path and the reason
//! (`spec.updateStrategy.partition: Invalid value: "5": must be ...`), decision 2 of the spec.

use std::fmt;

/// What is wrong with a field (the same vocabulary as Kubernetes' `field.ErrorType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The field is required but missing or empty.
    Required,
    /// The value is malformed or out of range.
    Invalid,
    /// The value is not one of the supported values.
    NotSupported,
    /// The field may not be set (in this combination, or on update).
    Forbidden,
    /// The value repeats one that must be unique.
    Duplicate,
    /// The value is longer than allowed (the value itself is left out of the message).
    TooLong,
    /// Reported by the API server in its own words (a cause of its Invalid status), kept as is.
    Reported,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Required => "Required value",
            ErrorKind::Invalid => "Invalid value",
            ErrorKind::NotSupported => "Unsupported value",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::Duplicate => "Duplicate value",
            ErrorKind::TooLong => "Too long",
            ErrorKind::Reported => "",
        }
    }
}

/// One rejected field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path with indexes and keys, e.g. `spec.containers[0].image`.
    pub path: String,
    /// What kind of error.
    pub kind: ErrorKind,
    /// The offending value rendered as JSON, for `Invalid`/`NotSupported`/`Duplicate`.
    pub value: Option<String>,
    /// Why, in words.
    pub detail: String,
}

impl FieldError {
    /// `path: Required value: detail`.
    pub fn required(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            kind: ErrorKind::Required,
            value: None,
            detail: detail.into(),
        }
    }
    /// `path: Invalid value: <value>: detail`.
    pub fn invalid(
        path: impl Into<String>,
        value: impl fmt::Debug,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            kind: ErrorKind::Invalid,
            value: Some(format!("{value:?}")),
            detail: detail.into(),
        }
    }
    /// `path: Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(
        path: impl Into<String>,
        value: impl fmt::Debug,
        supported: &[&str],
    ) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            path: path.into(),
            kind: ErrorKind::NotSupported,
            value: Some(format!("{value:?}")),
            detail: format!("supported values: {list}"),
        }
    }
    /// `path: Forbidden: detail`.
    pub fn forbidden(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            kind: ErrorKind::Forbidden,
            value: None,
            detail: detail.into(),
        }
    }
    /// `path: Too long: may not be more than <max> bytes` (the API server's wording; the value is
    /// left out, as the API server does, since it is the long part).
    pub fn too_long(path: impl Into<String>, max: usize) -> Self {
        Self {
            path: path.into(),
            kind: ErrorKind::TooLong,
            value: None,
            detail: format!("may not be more than {max} bytes"),
        }
    }
    /// `path: <body>` where `body` is the API server's own text for the field
    /// (`Invalid value: "x": ...`, `Required value`, ...).
    pub fn reported(path: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            kind: ErrorKind::Reported,
            value: None,
            detail: body.into(),
        }
    }
    /// `path: Duplicate value: <value>`.
    pub fn duplicate(path: impl Into<String>, value: impl fmt::Debug) -> Self {
        Self {
            path: path.into(),
            kind: ErrorKind::Duplicate,
            value: Some(format!("{value:?}")),
            detail: String::new(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == ErrorKind::Reported {
            return write!(f, "{}: {}", self.path, self.detail);
        }
        write!(f, "{}: {}", self.path, self.kind.as_str())?;
        if let Some(v) = &self.value {
            write!(f, ": {v}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// All errors of one object, rendered the way the API server renders an Invalid status:
/// `<Kind> "<name>" is invalid: [err1, err2]` (or without brackets for one error).
pub fn render(kind: &str, name: &str, errs: &[FieldError]) -> String {
    let list: Vec<String> = errs.iter().map(ToString::to_string).collect();
    if list.len() == 1 {
        format!("{kind} {name:?} is invalid: {}", list[0])
    } else {
        format!("{kind} {name:?} is invalid: [{}]", list.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_the_api_server() {
        let e = FieldError::invalid(
            "spec.updateStrategy.partition",
            "5",
            "must be an integer or a percentage",
        );
        assert_eq!(
            e.to_string(),
            r#"spec.updateStrategy.partition: Invalid value: "5": must be an integer or a percentage"#
        );
        let r = FieldError::required("spec.selector", "no selector defined for SidecarSet");
        assert_eq!(
            r.to_string(),
            "spec.selector: Required value: no selector defined for SidecarSet"
        );
        let n = FieldError::not_supported(
            "spec.updateStrategy.type",
            "Foo",
            &["RollingUpdate", "NotUpdate"],
        );
        assert_eq!(
            n.to_string(),
            r#"spec.updateStrategy.type: Unsupported value: "Foo": supported values: "RollingUpdate", "NotUpdate""#
        );
        assert_eq!(
            render("SidecarSet", "x", std::slice::from_ref(&r)),
            format!("SidecarSet \"x\" is invalid: {r}")
        );
        assert_eq!(
            render("SidecarSet", "x", &[r.clone(), e.clone()]),
            format!("SidecarSet \"x\" is invalid: [{r}, {e}]")
        );
    }
}
