//! The TAXII 2.1 HTTP server of a node.
