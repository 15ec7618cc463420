//! Hand-written checks for names and identifiers: object types, property names, `type--UUID`.

/// Why a string is not a valid identifier (STIX 2.1 §2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdProblem {
    NoSeparator,
    BadType,
    BadUuid,
    NotRfc4122,
}

impl IdProblem {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            IdProblem::NoSeparator => "an identifier must be `type--UUID`",
            IdProblem::BadType => "the type part of the identifier is not a valid object type name",
            IdProblem::BadUuid => {
                "the UUID part of the identifier is not a UUID in 8-4-4-4-12 hex form"
            }
            IdProblem::NotRfc4122 => {
                "the UUID part of the identifier is not an RFC 4122 UUID (variant bits must be 10, version 1-8)"
            }
        }
    }
}

/// Split an identifier into its type and UUID parts and check both
/// (STIX 2.1 §2.9): `object-type--` followed by an RFC 4122 UUID.
pub(crate) fn parse_id(id: &str) -> Result<(&str, &str), IdProblem> {
    // A UUID holds no "--", so the last one separates the parts.
    let Some(at) = id.rfind("--") else {
        return Err(IdProblem::NoSeparator);
    };
    let (ty, uuid) = (&id[..at], &id[at + 2..]);
    if !is_type_name(ty) {
        return Err(IdProblem::BadType);
    }
    check_uuid(uuid)?;
    Ok((ty, uuid))
}

/// The UUID must be in canonical 8-4-4-4-12 hex form and RFC 4122 compliant:
/// variant bits `10`, and a version number (STIX 2.1 §2.9).
fn check_uuid(u: &str) -> Result<(), IdProblem> {
    let b = u.as_bytes();
    if b.len() != 36 {
        return Err(IdProblem::BadUuid);
    }
    for (i, &c) in b.iter().enumerate() {
        let ok = match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        };
        if !ok {
            return Err(IdProblem::BadUuid);
        }
    }
    let version = b[14];
    let variant = b[19].to_ascii_lowercase();
    if !(b'1'..=b'8').contains(&version) || !matches!(variant, b'8' | b'9' | b'a' | b'b') {
        return Err(IdProblem::NotRfc4122);
    }
    Ok(())
}

/// Object type names (STIX 2.1 §3.1): 3-250 characters of a-z, 0-9 and
/// hyphen, starting with a letter, without two hyphens in a row (which
/// would make `type--UUID` ambiguous).
pub(crate) fn is_type_name(t: &str) -> bool {
    (3..=250).contains(&t.len())
        && t.as_bytes()[0].is_ascii_lowercase()
        && !t.contains("--")
        && t.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// Property names (STIX 2.1 §3.1, §11.1): 3-250 characters of a-z, 0-9
/// and underscore, starting with a letter.
pub(crate) fn is_property_name(p: &str) -> bool {
    (3..=250).contains(&p.len())
        && p.as_bytes()[0].is_ascii_lowercase()
        && p.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Dictionary keys (STIX 2.1 §2.3): at most 250 ASCII letters, digits, `_` or `-`.
pub(crate) fn is_dict_key(k: &str) -> bool {
    k.len() <= 250
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(
            parse_id("indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"),
            Ok(("indicator", "8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"))
        );
        assert_eq!(
            parse_id("x-my-thing--8e2e2d2b-17d4-5cbf-a38f-98ee46b3cd3f").map(|p| p.0),
            Ok("x-my-thing")
        );
        assert_eq!(parse_id("indicator-8e2e"), Err(IdProblem::NoSeparator));
        assert_eq!(
            parse_id("Indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f"),
            Err(IdProblem::BadType)
        );
        assert_eq!(parse_id("indicator--8e2e2d2b"), Err(IdProblem::BadUuid));
        assert_eq!(
            parse_id("indicator--00000000-0000-0000-0000-000000000000"),
            Err(IdProblem::NotRfc4122)
        );
        assert_eq!(
            parse_id("indicator--8e2e2d2b-17d4-4cbf-c38f-98ee46b3cd3f"),
            Err(IdProblem::NotRfc4122)
        );
    }

    #[test]
    fn names() {
        assert!(is_type_name("x-foo"));
        assert!(!is_type_name("ab"));
        assert!(!is_type_name("x_foo"));
        assert!(!is_type_name("1abc"));
        assert!(!is_type_name("x--y"));
        assert!(is_property_name("x_foo"));
        assert!(!is_property_name("x-foo"));
        assert!(!is_property_name("Xfoo"));
        assert!(!is_property_name("_x_foo"));
        assert!(!is_property_name("1_foo"));
        assert!(is_dict_key("Content-Type"));
        assert!(!is_dict_key("a.b"));
    }
}
