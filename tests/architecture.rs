//! The import graph of `src/` has no cycles.
//!
//! Every file of the library is a module; an import is any `crate::…`, `super::…`,
//! `self::…` or child-module path in it (a `use` or a path written inline), and it points at
//! the deepest file module the path names (`crate::feed::queue::Job` → `src/feed/queue.rs`,
//! `crate::feed::FeedSettings` → `src/feed/mod.rs`). A cycle fails the test and is listed
//! file by file. `main.rs` and `src/bin/` are other crates: the library cannot import them,
//! so they cannot close a cycle and are left out.
//!
//! A second test keeps the layers apart: domain modules never import the composition root
//! (`startup`), the HTTP skin (`http`), the HTTP error mapping (`error`) or the settings
//! loader (`config`).
//!
//! It reads the sources with a small lexer rather than a Rust parser: comments and literals
//! are skipped, `use` trees expanded, inline `mod name { … }` blocks tracked for `super`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path from the crate root: `["feed", "queue"]`; the root is `[]`.
type ModulePath = Vec<String>;

/// Files of the library and the files each one imports.
#[derive(Debug, Default)]
struct ImportGraph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl ImportGraph {
    fn add(&mut self, from: &str, to: &str) {
        self.edges.entry(to.to_string()).or_default();
        let targets = self.edges.entry(from.to_string()).or_default();
        if from != to {
            targets.insert(to.to_string());
        }
    }

    /// Strongly connected components with more than one file (Tarjan), each sorted.
    fn cycles(&self) -> Vec<Vec<String>> {
        struct Walk<'a> {
            graph: &'a ImportGraph,
            index: BTreeMap<&'a str, usize>,
            low: BTreeMap<&'a str, usize>,
            stack: Vec<&'a str>,
            on_stack: BTreeSet<&'a str>,
            found: Vec<Vec<String>>,
        }
        impl<'a> Walk<'a> {
            fn visit(&mut self, node: &'a str) {
                let n = self.index.len();
                self.index.insert(node, n);
                self.low.insert(node, n);
                self.stack.push(node);
                self.on_stack.insert(node);
                let graph = self.graph;
                for next in graph.edges.get(node).into_iter().flatten() {
                    let next = next.as_str();
                    if !self.index.contains_key(next) {
                        self.visit(next);
                        let low = self.low[node].min(self.low[next]);
                        self.low.insert(node, low);
                    } else if self.on_stack.contains(next) {
                        let low = self.low[node].min(self.index[next]);
                        self.low.insert(node, low);
                    }
                }
                if self.low[node] == self.index[node] {
                    let mut component = Vec::new();
                    while let Some(member) = self.stack.pop() {
                        self.on_stack.remove(member);
                        component.push(member.to_string());
                        if member == node {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        component.sort();
                        self.found.push(component);
                    }
                }
            }
        }
        let mut walk = Walk {
            graph: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            found: Vec::new(),
        };
        for node in self.edges.keys() {
            if !walk.index.contains_key(node.as_str()) {
                walk.visit(node);
            }
        }
        walk.found.sort();
        walk.found
    }

    /// One closed path through a component, `a → b → … → a`, for the failure message.
    fn cycle_through(&self, component: &[String]) -> Vec<String> {
        let members: BTreeSet<&str> = component.iter().map(String::as_str).collect();
        let start = component[0].as_str();
        // Breadth-first from the start's successors back to the start, inside the component.
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            for next in self.edges.get(node).into_iter().flatten() {
                let next = next.as_str();
                if !members.contains(next) {
                    continue;
                }
                if next == start {
                    let mut path = vec![start.to_string()];
                    let mut at = node;
                    while at != start {
                        path.push(at.to_string());
                        at = came_from[at];
                    }
                    path.push(start.to_string());
                    path.reverse();
                    return path;
                }
                if !came_from.contains_key(next) {
                    came_from.insert(next, node);
                    queue.push_back(next);
                }
            }
        }
        component.to_vec()
    }

    /// Top-level modules whose files import `forbidden` top-level modules: (file, target).
    fn imports_into(&self, from_modules: &[&str], forbidden: &[&str]) -> Vec<(String, String)> {
        let top = |file: &str| file.split(['/', '.']).next().unwrap_or_default().to_string();
        let mut found = Vec::new();
        for (from, targets) in &self.edges {
            if !from_modules.contains(&top(from).as_str()) {
                continue;
            }
            for to in targets {
                if forbidden.contains(&top(to).as_str()) {
                    found.push((from.clone(), to.clone()));
                }
            }
        }
        found
    }
}

/// The source with comments, string, byte-string and char literals blanked out (newlines
/// kept), so that paths inside them do not count.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == 'r'
            && (at(i + 1) == '"' || (at(i + 1) == '#' && matches!(at(i + 2), '"' | '#')))
            && !is_ident(at(i.wrapping_sub(1)))
        {
            // Raw string: r"…", r#"…"#, …
            let mut j = i + 1;
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| at(j + 1 + k) == '#') {
                    j += 1 + hashes;
                    break;
                }
                if chars[j] == '\n' {
                    out.push('\n');
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                if chars[j] == '\\' {
                    j += 1;
                }
                if at(j) == '\n' {
                    out.push('\n');
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j + 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1F600}'); otherwise a lifetime or label.
            if at(i + 1) == '\\' {
                // Past the escaped character, which may itself be a quote ('\'').
                let mut j = i + 3;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
            out.push(' ');
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Tokens: identifiers, `::`, and single punctuation characters.
fn tokens(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if is_ident(c) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push("::".to_string());
            i += 2;
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

/// `{a, b::{c, d as e}, self}` after `prefix` → the full paths it names.
fn expand_use_tree(tokens: &[String], prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].as_str() {
            "{" => {
                // Split the group's items at top-level commas.
                let mut depth = 0;
                let mut start = i + 1;
                let mut j = i;
                while j < tokens.len() {
                    match tokens[j].as_str() {
                        "{" => depth += 1,
                        "}" => {
                            depth -= 1;
                            if depth == 0 {
                                expand_use_tree(&tokens[start..j], &path, out);
                                return;
                            }
                        }
                        "," if depth == 1 => {
                            expand_use_tree(&tokens[start..j], &path, out);
                            start = j + 1;
                        }
                        _ => {}
                    }
                    j += 1;
                }
                return;
            }
            "::" => {}
            "as" | "*" => break,
            "self" if !path.is_empty() => {}
            segment => path.push(segment.to_string()),
        }
        i += 1;
    }
    if !path.is_empty() {
        out.push(path);
    }
}

/// Every path a file's code names that starts at `crate`, `super` or `self` or at a child
/// module, with the inline module it appears in (for `super`).
fn named_paths(code: &str) -> Vec<(ModulePath, Vec<String>)> {
    let tokens = tokens(code);
    let mut found = Vec::new();
    // Inline `mod name { … }` blocks open at this point, with the brace depth they opened at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let inline_path = |inline: &[(String, usize)]| inline.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>();
    while i < tokens.len() {
        let token = tokens[i].as_str();
        match token {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, opened)| *opened == depth) {
                    inline.pop();
                }
            }
            "mod" if tokens.get(i + 2).map(String::as_str) == Some("{") => {
                inline.push((tokens[i + 1].clone(), depth));
                depth += 1;
                i += 3;
                continue;
            }
            "use" => {
                let end = tokens[i..]
                    .iter()
                    .position(|t| t == ";")
                    .map_or(tokens.len(), |p| i + p);
                let mut paths = Vec::new();
                expand_use_tree(&tokens[i + 1..end], &[], &mut paths);
                let here = inline_path(&inline);
                found.extend(paths.into_iter().map(|p| (here.clone(), p)));
                i = end + 1;
                continue;
            }
            _ if is_ident(token.chars().next().unwrap_or(' '))
                && tokens.get(i + 1).map(String::as_str) == Some("::")
                && (i == 0 || !matches!(tokens[i - 1].as_str(), "::" | "$")) =>
            {
                // An inline path `a::b::c`: its identifiers up to the first non-path token.
                let mut path = vec![token.to_string()];
                let mut j = i + 1;
                while tokens.get(j).map(String::as_str) == Some("::")
                    && tokens
                        .get(j + 1)
                        .is_some_and(|t| is_ident(t.chars().next().unwrap_or(' ')))
                {
                    path.push(tokens[j + 1].clone());
                    j += 2;
                }
                found.push((inline_path(&inline), path));
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// The module a path names, resolved from the module `here`; None for other crates.
fn resolve(here: &[String], path: &[String], modules: &BTreeSet<ModulePath>) -> Option<ModulePath> {
    let (mut base, rest): (ModulePath, &[String]) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("self") => (here.to_vec(), &path[1..]),
        Some("super") => {
            let mut base = here.to_vec();
            let mut rest = path;
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        Some(first) => {
            // A child module of `here` (2018 paths), else another crate (std, serde, …).
            let mut child = here.to_vec();
            child.push(first.to_string());
            if !modules.contains(&child) {
                return None;
            }
            (here.to_vec(), path)
        }
        None => return None,
    };
    base.extend(rest.iter().cloned());
    Some(base)
}

/// `src/feed/queue.rs` → `["feed", "queue"]`; `mod.rs` and `lib.rs` name their folder.
fn module_of(relative: &Path) -> ModulePath {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

fn library_files(src: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    files.retain(|path| {
        let relative = path.strip_prefix(src).unwrap_or(path);
        relative != Path::new("main.rs") && !relative.starts_with("bin")
    });
    files
}

/// Builds the graph from (path relative to src/, source text) pairs.
fn graph_of(sources: &[(String, String)]) -> ImportGraph {
    let modules: BTreeMap<ModulePath, String> = sources
        .iter()
        .map(|(file, _)| (module_of(Path::new(file)), file.clone()))
        .collect();
    let known: BTreeSet<ModulePath> = modules.keys().cloned().collect();
    let mut graph = ImportGraph::default();
    for (file, source) in sources {
        let module = module_of(Path::new(file));
        graph.add(file, file);
        for (inline, path) in named_paths(&code_only(source)) {
            let mut here = module.clone();
            here.extend(inline);
            let Some(target) = resolve(&here, &path, &known) else {
                continue;
            };
            // The deepest file module the path runs through.
            let file_of_target = (0..=target.len())
                .rev()
                .find_map(|n| modules.get(&target[..n]))
                .cloned();
            if let Some(to) = file_of_target {
                graph.add(file, &to);
            }
        }
    }
    graph
}

fn crate_graph() -> ImportGraph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let sources: Vec<(String, String)> = library_files(&src)
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
            let relative = path
                .strip_prefix(&src)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            (relative, text)
        })
        .collect();
    graph_of(&sources)
}

#[test]
fn the_modules_of_src_import_each_other_without_cycles() {
    let graph = crate_graph();
    assert!(
        graph.edges.len() > 40 && graph.edges.values().map(BTreeSet::len).sum::<usize>() > 100,
        "the import graph looks empty: is the lexer still reading src/?"
    );
    let cycles = graph.cycles();
    let report: Vec<String> = cycles
        .iter()
        .map(|component| {
            format!(
                "{} files: {}\n  for example {}",
                component.len(),
                component.join(", "),
                graph.cycle_through(component).join(" → ")
            )
        })
        .collect();
    assert!(cycles.is_empty(), "import cycles in src/:\n{}", report.join("\n"));
}

#[test]
fn domain_modules_import_neither_the_application_nor_the_http_edge_nor_the_settings_loader() {
    // The domain stages and what they stand on (storage, cache, media, the runtime).
    let domain = [
        "feed",
        "generate",
        "recommend",
        "interest",
        "ingest",
        "style",
        "provenance",
        "store",
        "cache",
        "media",
        "tensor",
        "keys",
        "onnx_runtime",
        "telemetry",
    ];
    let outside = ["startup", "http", "error", "config", "cli", "tools"];
    let wrong = crate_graph().imports_into(&domain, &outside);
    assert!(
        wrong.is_empty(),
        "domain modules importing the application, the HTTP edge or config.rs:\n{}",
        wrong
            .iter()
            .map(|(from, to)| format!("  {from} → {to}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn sources(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files.iter().map(|(f, s)| (f.to_string(), s.to_string())).collect()
}

#[test]
fn the_detector_finds_a_cycle_in_a_small_hand_made_graph() {
    let mut graph = ImportGraph::default();
    for (from, to) in [
        ("a", "b"),
        ("b", "c"),
        ("c", "a"),
        ("c", "d"),
        ("d", "e"),
        ("e", "d"),
        ("f", "a"),
    ] {
        graph.add(from, to);
    }
    assert_eq!(
        graph.cycles(),
        vec![
            vec!["a".to_string(), "b".into(), "c".into()],
            vec!["d".to_string(), "e".into()]
        ]
    );
    assert_eq!(
        graph.cycle_through(&["a".into(), "b".into(), "c".into()]),
        ["a", "b", "c", "a"]
    );

    let mut acyclic = ImportGraph::default();
    for (from, to) in [("a", "b"), ("b", "c"), ("a", "c"), ("d", "a")] {
        acyclic.add(from, to);
    }
    assert!(acyclic.cycles().is_empty());
}

#[test]
fn imports_resolve_to_the_file_that_defines_the_module_they_name() {
    let graph = graph_of(&sources(&[
        ("lib.rs", "pub mod feed; pub mod config; pub mod store;"),
        (
            "feed/mod.rs",
            "pub mod queue;\nuse queue::Job;\n// use crate::config::X;\nconst S: &str = \"crate::store::y\";\n\
             #[cfg(test)] mod tests { use super::*; }",
        ),
        (
            "feed/queue.rs",
            "use crate::{store::{self, pool::Pool}, config::Settings as S};",
        ),
        (
            "store/mod.rs",
            "pub mod pool; fn f() -> super::feed::queue::Job { todo!() }",
        ),
        ("store/pool.rs", "pub struct Pool<'a>(&'a str); const C: char = '\"';"),
        ("config.rs", "fn g() { let _ = config::Config::builder(); }"),
    ]));
    let edges = |file: &str| graph.edges[file].iter().cloned().collect::<Vec<_>>();
    assert_eq!(edges("feed/mod.rs"), ["feed/queue.rs"]);
    assert_eq!(edges("feed/queue.rs"), ["config.rs", "store/mod.rs", "store/pool.rs"]);
    assert_eq!(edges("store/mod.rs"), ["feed/queue.rs"]);
    assert!(edges("store/pool.rs").is_empty());
    // `config::` inside config.rs is the external crate.
    assert!(edges("config.rs").is_empty());
    assert_eq!(
        graph.cycles(),
        vec![vec!["feed/queue.rs".to_string(), "store/mod.rs".into()]]
    );
}
