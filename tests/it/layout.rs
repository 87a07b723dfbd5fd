//! The shape of `src/`, checked: no import cycle between modules, no file or function past the size a
//! reader can hold, and README's Layout section naming what is really there.
//!
//! Dependencies are read from the source text: every `crate::`, `super::` and `self::` path (in `use`
//! trees and in code) and every `use` of a child module, outside comments and `#[cfg(test)]` code.
//! A path through a module's `pub use` re-export counts as a dependency on the module that defines
//! the name. For every module, the graph over its direct children must have no cycle; the module's own
//! file (`mod.rs`) is the shared base its children may all use and is not a node.
//!
//! A function longer than [`MAX_FN_LINES`] needs a comment line starting with `// Long:` right above
//! it (among its doc comments and attributes) saying why the length is the clearest form.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const MAX_FILE_LINES: usize = 900;
const MAX_FN_LINES: usize = 80;

type Module = Vec<String>;

/// One source file of the library crate, as the module it defines.
struct SourceFile {
    path: PathBuf,
    module: Module,
    /// The text before the first `#[cfg(test)]`, comments blanked out (line numbers kept).
    code: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn library_files() -> Vec<SourceFile> {
    let src = Path::new(ROOT).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "main.rs"))
        .map(|path| {
            let relative = path.strip_prefix(&src).unwrap().with_extension("");
            let mut module: Module = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let last = module.last().cloned().unwrap_or_default();
            if last == "mod" || last == "lib" {
                module.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            SourceFile {
                code: strip_comments(before_tests(&text)),
                path,
                module,
            }
        })
        .collect()
}

fn before_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    }
}

/// The text with comments, string and character literals blanked (newlines kept), so braces and
/// paths are only those of code.
fn strip_comments(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            loop {
                if i >= chars.len() {
                    break;
                }
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('#') || next == Some('"')) && !ident_before(&chars, i) {
            let mut hashes = 0;
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            while j < chars.len() {
                if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &chars[i..j.min(chars.len())] {
                out.push(blank(ch));
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && is_char_literal(&chars, i) {
            let end = if chars.get(i + 1) == Some(&'\\') {
                (i + 3..chars.len())
                    .find(|&k| chars[k] == '\'')
                    .unwrap_or(i)
            } else {
                i + 2
            };
            for _ in i..=end {
                out.push(' ');
            }
            i = end + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// `'x'`, `'\n'`, `'\''`, `'\u{7f}'` are characters; `'a` (a lifetime or label) is not.
fn is_char_literal(chars: &[char], i: usize) -> bool {
    match chars.get(i + 1) {
        Some('\\') => true,
        Some(_) => chars.get(i + 2) == Some(&'\''),
        None => false,
    }
}

/// Every path the code names that starts with `crate`, `super` or `self`, or with a child module of
/// a directory module; `use` trees are expanded (`a::{b, c::d}` gives `a::b` and `a::c::d`).
fn paths_named(code: &str) -> Vec<(usize, Vec<String>, bool)> {
    let mut out = Vec::new();
    for (start, statement) in use_statements(code) {
        let line = code[..start].matches('\n').count() + 1;
        let public = statement.trim_start().starts_with("pub");
        let tree = statement
            .trim_start()
            .trim_start_matches("pub(crate)")
            .trim_start_matches("pub(super)")
            .trim_start_matches("pub")
            .trim_start()
            .trim_start_matches("use")
            .trim();
        for path in expand_tree(tree) {
            out.push((line, path, public));
        }
    }
    for (index, line) in code.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("use ") || trimmed.contains(" use ") {
            continue;
        }
        for root in ["crate::", "super::"] {
            let mut rest = line;
            while let Some(at) = rest.find(root) {
                let before = rest[..at].chars().last();
                let tail = &rest[at..];
                rest = &rest[at + root.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let path: Vec<String> = tail
                    .split("::")
                    .map(|s| {
                        s.chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect::<String>()
                    })
                    .take_while(|s| !s.is_empty())
                    .collect();
                out.push((index + 1, path, false));
            }
        }
    }
    out
}

/// The `use` statements of the code (start offset, text without the `;`), including `pub use`.
fn use_statements(code: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in code.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let is_use = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .any(|p| trimmed.starts_with(p));
        if is_use && let Some(end) = code[offset..].find(';') {
            out.push((offset, &code[offset..offset + end]));
        }
        offset += line.len();
    }
    out
}

fn expand_tree(tree: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    expand_into(&drop_aliases(tree), &mut Vec::new(), &mut out);
    out
}

/// The tree without whitespace and without `as` renames (`a::B as C` becomes `a::B`).
fn drop_aliases(tree: &str) -> String {
    let mut out = String::new();
    let mut skip_alias = false;
    for word in tree.split_whitespace() {
        if skip_alias {
            out.push_str(word.trim_start_matches(|c: char| c.is_alphanumeric() || c == '_'));
            skip_alias = false;
        } else if word == "as" {
            skip_alias = true;
        } else {
            out.push_str(word);
        }
    }
    out
}

fn expand_into(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let segments = |text: &str| -> Vec<String> {
        text.split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    if let Some(open) = tree.find('{') {
        let inner = &tree[open + 1..tree.rfind('}').unwrap()];
        let depth = prefix.len();
        prefix.extend(segments(&tree[..open]));
        for part in split_top_level(inner) {
            expand_into(part, prefix, out);
        }
        prefix.truncate(depth);
    } else {
        let mut full = prefix.clone();
        full.extend(segments(tree));
        if !full.is_empty() {
            out.push(full);
        }
    }
}

fn split_top_level(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in list.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// A path as absolute module segments, or `None` when it is not a path into this crate.
fn absolute(file: &SourceFile, path: &[String], modules: &BTreeSet<Module>) -> Option<Vec<String>> {
    let (first, rest) = path.split_first()?;
    let mut base = file.module.clone();
    let rest = match first.as_str() {
        "crate" => {
            base.clear();
            rest
        }
        "self" => rest,
        "super" => {
            base.pop()?;
            let mut rest = rest;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
            rest
        }
        _ => {
            let mut child = base.clone();
            child.push(first.clone());
            if !modules.contains(&child) {
                return None;
            }
            path
        }
    };
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The module that defines what an absolute path names: the longest module prefix, followed through
/// `pub use` re-exports of directory modules.
fn defining_module(
    path: &[String],
    modules: &BTreeSet<Module>,
    reexports: &BTreeMap<(Module, String), Module>,
) -> Module {
    let mut module: Module = Vec::new();
    for (i, segment) in path.iter().enumerate() {
        let mut next = module.clone();
        next.push(segment.clone());
        if modules.contains(&next) {
            module = next;
            continue;
        }
        if let Some(target) = reexports.get(&(module.clone(), segment.clone()))
            && target != &module
        {
            let mut rest = target.clone();
            rest.extend(path[i..].iter().cloned());
            return defining_module(&rest, modules, reexports);
        }
        break;
    }
    module
}

struct Graph {
    /// (from module, to module) -> an example reference, "file:line".
    edges: BTreeMap<(Module, Module), String>,
}

fn dependency_graph(files: &[SourceFile]) -> Graph {
    let modules: BTreeSet<Module> = files.iter().map(|f| f.module.clone()).collect();
    let mut reexports = BTreeMap::new();
    for file in files {
        for (_, path, public) in paths_named(&file.code) {
            if !public {
                continue;
            }
            if let Some(full) = absolute(file, &path, &modules)
                && let Some(name) = path.last()
            {
                let target = defining_module(&full, &modules, &BTreeMap::new());
                reexports.insert((file.module.clone(), name.clone()), target);
            }
        }
    }
    let mut edges = BTreeMap::new();
    for file in files {
        for (line, path, _) in paths_named(&file.code) {
            let Some(full) = absolute(file, &path, &modules) else {
                continue;
            };
            let target = defining_module(&full, &modules, &reexports);
            if target != file.module {
                let at = format!("{}:{line}", file.path.strip_prefix(ROOT).unwrap().display());
                edges.entry((file.module.clone(), target)).or_insert(at);
            }
        }
    }
    Graph { edges }
}

/// The cycles among the direct children of `parent`, each as its modules and the references that
/// close it.
fn cycles_under(graph: &Graph, parent: &Module) -> Vec<String> {
    let child_of = |m: &Module| -> Option<String> {
        (m.len() > parent.len() && m.starts_with(parent)).then(|| m[parent.len()].clone())
    };
    let mut children: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for ((from, to), at) in &graph.edges {
        if let (Some(a), Some(b)) = (child_of(from), child_of(to))
            && a != b
        {
            children
                .entry(a)
                .or_default()
                .entry(b)
                .or_insert_with(|| at.clone());
        }
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for start in children.keys() {
        let mut stack = vec![start.clone()];
        find_cycle(&children, &mut stack, &mut done, &mut found, parent);
    }
    found
}

fn find_cycle(
    edges: &BTreeMap<String, BTreeMap<String, String>>,
    stack: &mut Vec<String>,
    done: &mut BTreeSet<String>,
    found: &mut Vec<String>,
    parent: &Module,
) {
    let node = stack.last().unwrap().clone();
    if done.contains(&node) {
        return;
    }
    for (next, _) in edges.get(&node).into_iter().flatten() {
        if let Some(at) = stack.iter().position(|n| n == next) {
            let cycle = &stack[at..];
            let steps: Vec<String> = cycle
                .iter()
                .zip(cycle.iter().cycle().skip(1))
                .map(|(a, b)| format!("{a} -> {b} ({})", edges[a][b]))
                .collect();
            found.push(format!("in {}: {}", module_name(parent), steps.join(", ")));
        } else if !done.contains(next) {
            stack.push(next.clone());
            find_cycle(edges, stack, done, found, parent);
            stack.pop();
        }
    }
    done.insert(node);
}

fn module_name(module: &Module) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

#[test]
fn no_module_depends_on_itself_through_another() {
    let files = library_files();
    let graph = dependency_graph(&files);
    let parents: BTreeSet<Module> = files
        .iter()
        .filter_map(|f| f.module.split_last().map(|(_, parent)| parent.to_vec()))
        .collect();
    let cycles: Vec<String> = parents
        .iter()
        .flat_map(|parent| cycles_under(&graph, parent))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let file = |module: &[&str], code: &str| SourceFile {
        path: Path::new(ROOT).join("src/x.rs"),
        module: module.iter().map(|s| (*s).to_owned()).collect(),
        code: strip_comments(code),
    };
    let files = vec![
        file(&[], "pub mod a;\npub mod b;\npub mod p;\n"),
        file(&["a"], "use crate::b::thing;\n// use crate::p::x;\n"),
        file(&["b"], "fn f() { crate::p::Shared::new(); }\n"),
        file(&["p"], "mod c;\nmod d;\npub use c::Shared;\n"),
        file(&["p", "c"], "use super::super::a::Item;\nuse super::D;\n"),
        file(&["p", "d"], "const S: &str = \"crate::a\";\n"),
    ];
    let graph = dependency_graph(&files);
    let top = cycles_under(&graph, &Vec::new());
    assert_eq!(top.len(), 1, "{top:?}");
    assert!(
        top[0].contains("a -> b") && top[0].contains("p -> a"),
        "{top:?}"
    );
    assert!(cycles_under(&graph, &vec!["p".to_owned()]).is_empty());
}

/// Where each function starts and how many lines it spans, from `fn` to its closing brace.
fn functions(code: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(at) = fn_keyword(line) else {
            continue;
        };
        let name: String = line[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let mut depth = 0i32;
        let mut opened = false;
        'scan: for (offset, text) in lines[index..].iter().enumerate() {
            let from = if offset == 0 { at } else { 0 };
            for c in text[from..].chars() {
                match c {
                    ';' if !opened => break 'scan,
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => {
                        depth -= 1;
                        if opened && depth == 0 {
                            out.push((index + 1, name.clone(), offset + 1));
                            break 'scan;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

fn fn_keyword(line: &str) -> Option<usize> {
    let at = line.find("fn ")?;
    let before = line[..at].trim();
    let qualifiers = before.split_whitespace().all(|w| {
        [
            "pub",
            "pub(crate)",
            "pub(super)",
            "async",
            "const",
            "extern",
            "unsafe",
        ]
        .contains(&w)
    });
    (qualifiers && (at == 0 || line[..at].ends_with(' '))).then_some(at)
}

/// Whether the lines above a function (its doc comments and attributes) hold a `// Long:` reason.
fn has_length_reason(text: &str, line: usize) -> bool {
    text.lines()
        .take(line - 1)
        .collect::<Vec<_>>()
        .iter()
        .rev()
        .map(|l| l.trim())
        .take_while(|l| l.starts_with("//") || l.starts_with("#[") || l.ends_with(")]"))
        .any(|l| l.starts_with("// Long:"))
}

#[test]
fn files_and_functions_stay_readable() {
    let mut problems = Vec::new();
    for file in library_files() {
        let text = std::fs::read_to_string(&file.path).unwrap();
        let name = file.path.strip_prefix(ROOT).unwrap().display().to_string();
        let total = text.lines().count();
        if total > MAX_FILE_LINES {
            problems.push(format!("{name}: {total} lines (at most {MAX_FILE_LINES})"));
        }
        for (line, function, length) in functions(&file.code) {
            if length > MAX_FN_LINES && !has_length_reason(&text, line) {
                problems.push(format!(
                    "{name}:{line}: fn {function} is {length} lines (at most {MAX_FN_LINES} without a `// Long:` reason)"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_length_check_measures_functions() {
    let code = "fn short() {\n    let s = \"}\";\n}\n\npub(crate) async fn long<'a>(x: &'a str) -> char {\n    if x.is_empty() { '{' } else {\n        'x'\n    }\n}\ntrait T { fn declared(&self); }\n";
    let found = functions(&strip_comments(code));
    assert_eq!(
        found,
        vec![(1, "short".to_owned(), 3), (5, "long".to_owned(), 5)]
    );
    let reasoned = "/// Doc.\n// Long: one table.\n#[allow(x)]\nfn table() {}\n";
    assert!(has_length_reason(reasoned, 4));
    assert!(!has_length_reason(
        "// Long: elsewhere\nfn a() {}\n\nfn b() {}\n",
        4
    ));
}

/// README's Layout section: every path it names exists, and every entry of `src/` is named.
#[test]
fn readme_layout_names_the_tree() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let section = readme
        .split("## Layout")
        .nth(1)
        .and_then(|s| s.split("```").nth(1))
        .expect("README has a Layout section with a code block");
    let named: BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|p| p.trim_end_matches('/').to_owned())
        .collect();
    let mut problems = Vec::new();
    for path in &named {
        if !Path::new(ROOT).join(path).exists() {
            problems.push(format!(
                "README's Layout names {path}, which does not exist"
            ));
        }
    }
    let src = Path::new(ROOT).join("src");
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let path = format!("src/{name}");
        if !named.contains(&path) {
            problems.push(format!("README's Layout does not name {path}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
