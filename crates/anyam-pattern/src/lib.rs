//! STIX patterning (STIX 2.1 §9): lexer, parser, validator and reference matcher. Does no I/O.
