//! STIX 2.1 object model: parsing and validation of every STIX 2.1 object, bundles, deterministic SCO ids. Does no I/O.
