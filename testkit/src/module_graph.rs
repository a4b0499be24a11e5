//! The graph of a crate's top-level modules as their `use crate::…` lines draw it, for the tests
//! that keep imports pointing one way: a lower module takes the narrow thing it needs and never
//! reaches back up (docs/architecture.md shows the map).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

/// Top-level module → the other top-level modules its non-test code names through `crate::`.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// The graph of the crate whose sources are in `src` (main.rs and lib.rs are not modules).
pub fn of_crate(src: &Path) -> Graph {
    let mut named: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    visit(src, src, &mut named);
    let modules: BTreeSet<String> = named.keys().cloned().collect();
    named
        .into_iter()
        .map(|(module, names)| {
            let deps = names
                .into_iter()
                .filter(|name| *name != module && modules.contains(name))
                .collect();
            (module, deps)
        })
        .collect()
}

fn visit(src: &Path, dir: &Path, named: &mut BTreeMap<String, BTreeSet<String>>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "tests") {
                continue;
            }
            visit(src, &path, named);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "main" || top == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // A module's own tests may reach anywhere.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
        named.entry(top).or_default().extend(crate_names(code));
    }
}

/// The first path segment of every name a `crate::` path (or `crate::{…}` group) holds.
fn crate_names(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level entries of the group: split on commas outside nested braces.
            let mut depth = 0;
            let mut entry = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.extend(first_segment(&entry));
                        entry.clear();
                        continue;
                    }
                    _ => {}
                }
                entry.push(c);
            }
            names.extend(first_segment(&entry));
        } else {
            names.extend(first_segment(rest));
        }
    }
    names
}

fn first_segment(path: &str) -> Option<String> {
    let name: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()))
    .then_some(name)
}

/// Every cycle among the modules: each strongly connected component of more than one module.
pub fn cycles(graph: &Graph) -> Vec<BTreeSet<String>> {
    // Tarjan's algorithm; the graphs are a few dozen modules.
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        found: Vec<BTreeSet<String>>,
    }
    fn connect<'g>(state: &mut State<'g>, v: &'g str) {
        state.index.insert(v, state.next);
        state.low.insert(v, state.next);
        state.next += 1;
        state.stack.push(v);
        state.on_stack.insert(v);
        for w in state.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !state.index.contains_key(w) {
                connect(state, w);
                let low = state.low[v].min(state.low[w]);
                state.low.insert(v, low);
            } else if state.on_stack.contains(w) {
                let low = state.low[v].min(state.index[w]);
                state.low.insert(v, low);
            }
        }
        if state.low[v] == state.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = state.stack.pop() {
                state.on_stack.remove(w);
                component.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            connect(&mut state, v);
        }
    }
    state.found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_nested_groups_name_their_first_segments() {
        let names = crate_names(
            "use crate::{Error, Result, store::{Snapshot, Update}, diff::Change};\nlet x = crate::outbox::DEFAULT;",
        );
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["diff", "outbox", "store"]);
    }

    #[test]
    fn a_cycle_is_found_and_a_chain_is_not() {
        let graph = |edges: &[(&str, &str)]| {
            let mut graph = Graph::new();
            for (a, b) in edges {
                graph.entry(a.to_string()).or_default().insert(b.to_string());
                graph.entry(b.to_string()).or_default();
            }
            graph
        };
        assert!(cycles(&graph(&[("a", "b"), ("b", "c")])).is_empty());
        let found = cycles(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].iter().cloned().collect::<Vec<_>>(), ["a", "b", "c"]);
    }
}
