//! The walk's state: a zero-allocation path to the current value and the violation list.

use serde_json::{Map, Value};

use crate::error::{KEEP_LIMIT, Violation};

/// Where the walk is, as a linked list on the stack: building a path costs
/// nothing, and it is rendered to a JSON pointer only when a violation is found.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    pub(crate) fn key(&'a self, k: &'a str) -> Path<'a> {
        Path::Key(self, k)
    }

    pub(crate) fn index(&'a self, i: usize) -> Path<'a> {
        Path::Index(self, i)
    }

    /// JSON pointer (RFC 6901) of this path: `/a/0/b`, `~` and `/` escaped.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Key(parent, k) => {
                parent.render_into(out);
                out.push('/');
                for c in k.chars() {
                    match c {
                        '~' => out.push_str("~0"),
                        '/' => out.push_str("~1"),
                        c => out.push(c),
                    }
                }
            }
            Path::Index(parent, i) => {
                parent.render_into(out);
                out.push('/');
                out.push_str(&i.to_string());
            }
        }
    }
}

/// Collects the violations of one object.
pub(crate) struct Ctx<'v> {
    /// The object being checked, for rules that look across properties
    /// (granular-marking selectors must resolve inside it).
    pub(crate) root: &'v Map<String, Value>,
    pub(crate) violations: Vec<Violation>,
    pub(crate) total: usize,
}

impl<'v> Ctx<'v> {
    pub(crate) fn new(root: &'v Map<String, Value>) -> Self {
        Ctx {
            root,
            violations: Vec::new(),
            total: 0,
        }
    }

    /// Record a violation at `path`.
    pub(crate) fn report(
        &mut self,
        path: &Path,
        message: impl Into<String>,
        section: &'static str,
    ) {
        self.total += 1;
        if self.violations.len() < KEEP_LIMIT {
            self.violations.push(Violation {
                path: path.render(),
                message: message.into(),
                section,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_as_json_pointers() {
        let root = Path::Root;
        assert_eq!(root.render(), "");
        let a = root.key("external_references");
        let b = a.index(0);
        let c = b.key("a/b~c");
        assert_eq!(c.render(), "/external_references/0/a~1b~0c");
    }
}
