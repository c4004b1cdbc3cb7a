//! The layers of docs/ARCHITECTURE.md, checked: no module imports from a
//! layer above its own, and the two roles (agent, server) never import each
//! other. Reads `src/` as text: every `crate::<module>` path counts.
use std::collections::BTreeSet;
use std::path::Path;

/// Lowest first. A module may use its own layer and those below.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "base",
        &[
            "clock",
            "log",
            "fsutil",
            "process",
            "glob",
            "signals",
            "http_agent",
        ],
    ),
    (
        "vocabulary",
        &[
            "protocol",
            "commands",
            "operator",
            "operator_keys",
            "chain",
            "identity",
        ],
    ),
    (
        "adapters",
        &[
            "docker",
            "rpc",
            "metrics",
            "transport",
            "peer_loop",
            "backup",
        ],
    ),
    ("roles", &["agent", "server", "cron", "configcheck"]),
    ("entry", &["cli"]),
];

/// Same-layer imports that are not allowed: the roles stay apart.
const APART: &[(&str, &str)] = &[("agent", "server"), ("server", "agent")];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut problems = BTreeSet::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            // Sibling test files (`commands_tests.rs`) belong to their module.
            .trim_end_matches("_tests")
            .to_string();
        if top == "main" || top == "lib" {
            continue;
        }
        let Some(own) = layer_of(&top) else {
            problems.insert(format!(
                "src/{top}: not in any layer; add it to LAYERS and ARCHITECTURE.md"
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (i, _) in text.match_indices("crate::") {
            let used: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if used == top || used.is_empty() {
                continue;
            }
            let Some(theirs) = layer_of(&used) else {
                problems.insert(format!(
                    "{}: uses crate::{used}, which is in no layer",
                    rel.display()
                ));
                continue;
            };
            if theirs > own || APART.contains(&(top.as_str(), used.as_str())) {
                problems.insert(format!(
                    "{} ({}) uses crate::{used} ({})",
                    rel.display(),
                    LAYERS[own].0,
                    LAYERS[theirs].0
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
}
