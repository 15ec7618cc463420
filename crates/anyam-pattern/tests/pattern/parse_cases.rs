//! Parser, printer and validator cases (STIX 2.1 §9).

use anyam_pattern::{StixVersion, parse, validate};

const V21: StixVersion = StixVersion::V2_1;

/// (pattern, canonical form)
const ROUND_TRIP: &[(&str, &str)] = &[
    ("[file:size = 1280]", "[file:size = 1280]"),
    ("[file:size==+5]", "[file:size = 5]"),
    ("[ x:y <> -5 ]", "[x:y != -5]"),
    ("[x:y = .5]", "[x:y = 0.5]"),
    ("[x:y = 1.0]", "[x:y = 1.0]"),
    ("[x:y NOT IN ( 1 ,2, 'a' )]", "[x:y NOT IN (1, 2, 'a')]"),
    ("[x:y IN ()]", "[x:y IN ()]"),
    (
        "[x:'a b'.'c-d'[0][*].e = 'it\\'s \\\\']",
        "[x:'a b'.'c-d'[0][*].e = 'it\\'s \\\\']",
    ),
    ("[x:'AND' = true]", "[x:'AND' = true]"),
    ("[x:y = h'0A0b']", "[x:y = h'0a0b']"),
    ("[x:y = b'AQIDBA==']", "[x:y = b'AQIDBA==']"),
    (
        "[x:y = t'2016-01-01T00:00:00.1Z']",
        "[x:y = t'2016-01-01T00:00:00.1Z']",
    ),
    (
        "[x:y LIKE 'a%' OR x:z MATCHES '^a' AND NOT EXISTS x:w]",
        "[x:y LIKE 'a%' OR x:z MATCHES '^a' AND NOT EXISTS x:w]",
    ),
    (
        "[a:b=1] AND [c:d=2] OR [e:f=3] FOLLOWEDBY [g:h=4]",
        "[a:b = 1] AND [c:d = 2] OR [e:f = 3] FOLLOWEDBY [g:h = 4]",
    ),
    (
        "([a:b=1]) WITHIN 5 SECONDS REPEATS 2 TIMES",
        "([a:b = 1]) WITHIN 5 SECONDS REPEATS 2 TIMES",
    ),
    ("[a:b=1] WITHIN 2.5 SECONDS", "[a:b = 1] WITHIN 2.5 SECONDS"),
    (
        "[a:b=1] START t'2016-01-01T00:00:00Z' STOP t'2017-01-01T00:00:00Z'",
        "[a:b = 1] START t'2016-01-01T00:00:00Z' STOP t'2017-01-01T00:00:00Z'",
    ),
    (
        "[a:b ISSUBSET '10.0.0.0/8' /* c */ ] // x",
        "[a:b ISSUBSET '10.0.0.0/8']",
    ),
    (
        "[(a:b=1 OR a:c=2) AND a:d=3]",
        "[(a:b = 1 OR a:c = 2) AND a:d = 3]",
    ),
    (
        "[win-registry-key:key = 'a']",
        "[win-registry-key:key = 'a']",
    ),
];

#[test]
fn round_trip() {
    for (input, canonical) in ROUND_TRIP {
        let tree = parse(input, V21).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(tree.to_string(), *canonical, "{input}");
        let again = parse(canonical, V21).unwrap();
        assert_eq!(again, tree, "{input}");
    }
}

/// (pattern, expected column of the error, text the message must contain)
const SYNTAX_ERRORS: &[(&str, usize, &str)] = &[
    ("file:size = 1280", 1, "'['"),
    ("[file:size = ]", 14, "found ']'"),
    (
        "[file:hashes.MD5 = cead3f77f6cda6ec00f57d76c9a6879f]",
        20,
        "literal",
    ),
    ("[file.size = 1280]", 6, "':'"),
    ("[file:name MATCHES /.*\\.dll/]", 20, "string literal"),
    ("[a:b = 1] WITHIN ]", 18, "positive"),
    ("[a:b = 1] WITHIN 5 HOURS", 20, "SECONDS"),
    ("[a:b = 1] WITHIN -5 SECONDS", 18, "positive"),
    ("[x:y = t'2457-73-22T32:81:84.1Z']", 8, "literal"),
    ("[artifact:payload_bin = b'====']", 25, "literal"),
    ("[foo:bar=1] within 2 seconds", 13, "end of pattern"),
    ("[x:y = 01]", 9, "']'"),
    ("[x:y = 'a\\b']", 8, "literal"),
    ("[x:y = true] REPEATS 1.5 TIMES", 22, "integer"),
    ("[x:y > true]", 8, "orderable"),
    ("[x:y-z = 1]", 4, "property name"),
    ("[x:LAST = 1]", 4, "property name"),
    ("[x:y = 99999999999999999999]", 8, "64 bits"),
    ("[x:y = 1", 9, "end of pattern"),
    ("", 1, "end of pattern"),
];

#[test]
fn syntax_errors() {
    for (input, column, needle) in SYNTAX_ERRORS {
        let e = parse(input, V21).expect_err(input);
        assert_eq!(e.column, *column, "{input}: {e}");
        assert!(e.to_string().contains(needle), "{input}: {e}");
        assert!(!validate(input, V21).is_valid());
    }
}

#[test]
fn exists_is_2_1_only() {
    assert!(parse("[EXISTS x:y]", V21).is_ok());
    assert!(parse("[EXISTS x:y]", StixVersion::V2_0).is_err());
    assert!(parse("[x:EXISTS = 1]", StixVersion::V2_0).is_ok());
}

#[test]
fn limits() {
    let deep = format!("{}[a:b=1]{}", "(".repeat(5000), ")".repeat(5000));
    assert!(
        parse(&deep, V21)
            .unwrap_err()
            .to_string()
            .contains("nesting")
    );
    // Long operator chains are flat, so they parse, print and drop without deep recursion.
    let long_chain = vec!["[a:b=1]"; 20000].join(" AND ");
    assert_eq!(
        parse(&long_chain, V21).unwrap().to_string(),
        long_chain.replace("b=1", "b = 1")
    );
    let inner = format!("[{}]", vec!["a:b=1"; 20000].join(" OR "));
    assert!(parse(&inner, V21).is_ok());
    let quals = format!("[a:b=1]{}", " REPEATS 2 TIMES".repeat(100));
    assert!(parse(&quals, V21).is_err());
    let huge = format!("[a:b = '{}']", "x".repeat(2 << 20));
    assert!(parse(&huge, V21).is_err());
}

/// (pattern, valid, error/warning text expected)
const SEMANTIC: &[(&str, bool, &str)] = &[
    (
        "[file:hashes.'SHA-256' = 'f00']",
        false,
        "not a valid SHA-256 hash",
    ),
    (
        "[file:hashes.MD5 = 'cead3f77f6cda6ec00f57d76c9a6879f']",
        true,
        "",
    ),
    (
        "[file:hashes.md5 IN ('cead3f77f6cda6ec00f57d76c9a6879f', 'x')]",
        false,
        "MD5",
    ),
    ("[file:hashes.'FOO-1' = 'x']", true, "not a hash algorithm"),
    (
        "[a:b=1] WITHIN 5 SECONDS WITHIN 6 SECONDS",
        false,
        "WITHIN applied twice",
    ),
    ("([a:b=1]) WITHIN 5 SECONDS WITHIN 6 SECONDS", true, ""),
    (
        "([a:b=1] REPEATS 2 TIMES REPEATS 3 TIMES)",
        false,
        "REPEATS applied twice",
    ),
    ("[a:b=1] WITHIN 0 SECONDS", false, "positive"),
    ("[a:b=1] REPEATS 0 TIMES", false, "positive"),
    (
        "[a:b=1] START t'2017-01-01T00:00:00Z' STOP t'2016-01-01T00:00:00Z'",
        false,
        "not before",
    ),
    ("[a:b MATCHES '(']", false, "does not compile"),
    ("[a:b ISSUBSET '10.0.0.0/33']", false, "CIDR"),
    ("[a:b ISSUBSET '2001:db8::/32']", true, ""),
    (
        "[x:created = t'2024-02-30T12:00:00Z']",
        true,
        "no real instant",
    ),
    ("[file:size = 'big']", true, "holds a integer"),
    ("[X_Y:b = 1]", true, "object type"),
    ("[abc:b[-1] = 1]", true, "negative"),
];

#[test]
fn semantic_checks() {
    for (input, valid, needle) in SEMANTIC {
        let v = validate(input, V21);
        assert_eq!(v.is_valid(), *valid, "{input}: {v:?}");
        let all: Vec<String> = v
            .errors
            .iter()
            .chain(&v.warnings)
            .map(ToString::to_string)
            .collect();
        assert!(
            needle.is_empty() || all.iter().any(|m| m.contains(needle)),
            "{input}: {all:?}"
        );
    }
}
