//! The dependency direction between the workspace's crates, checked on the resolved
//! graph that `cargo metadata` reports.
//!
//! Only normal dependencies count, followed transitively: dev-dependencies are what
//! tests build with (the server's tests send with the client, for instance), and build
//! dependencies run at build time, not in the library.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// One rule: `from` must not reach, through normal dependencies, any package that
/// `forbids` names. A name ending in `*` names every package with that prefix;
/// `except` lists packages such a prefix does not cover. `from` itself is never
/// forbidden to itself.
pub(crate) struct Rule {
    /// The crate the rule is about.
    pub(crate) from: &'static str,
    /// Packages it must not reach (exact names, or prefixes ending in `*`).
    pub(crate) forbids: &'static [&'static str],
    /// Packages a prefix in `forbids` does not cover.
    pub(crate) except: &'static [&'static str],
    /// Why, in a few words, for the violation's line.
    pub(crate) why: &'static str,
}

/// The project's dependency direction (ARCHITECTURE.md, "Dependency direction").
/// A crate that breaks two rules through the same package is reported once, by the
/// first.
pub(crate) const RULES: &[Rule] = &[
    Rule {
        from: "dronehook-protocol",
        forbids: &["tokio", "hyper", "hyper-util"],
        except: &[],
        why: "the protocol is sans-IO: no async runtime, no HTTP implementation",
    },
    Rule {
        from: "dronehook-protocol",
        forbids: &["dronehook-*", "xtask"],
        except: &[],
        why: "the protocol depends on no sibling crate",
    },
    Rule {
        from: "dronehook-server",
        forbids: &["dronehook-client"],
        except: &[],
        why: "the server and the client never depend on each other",
    },
    Rule {
        from: "dronehook-client",
        forbids: &["dronehook-server"],
        except: &[],
        why: "the server and the client never depend on each other",
    },
    Rule {
        from: "dronehook-audit",
        forbids: &["dronehook-*", "xtask"],
        except: &["dronehook-protocol"],
        why: "the audit catalog builds on the protocol alone",
    },
    Rule {
        from: "dronehook-server",
        forbids: &["dronehook-audit"],
        except: &[],
        why: "the hostile catalog is for tests and tools, not shipped in a library",
    },
    Rule {
        from: "dronehook-client",
        forbids: &["dronehook-audit"],
        except: &[],
        why: "the hostile catalog is for tests and tools, not shipped in a library",
    },
    Rule {
        from: "dronehook-server",
        forbids: &["dronehook-cli", "dronehook-testkit", "xtask"],
        except: &[],
        why: "a library never depends on the command line or the tools",
    },
    Rule {
        from: "dronehook-client",
        forbids: &["dronehook-cli", "dronehook-testkit", "xtask"],
        except: &[],
        why: "a library never depends on the command line or the tools",
    },
    Rule {
        from: "dronehook-cli",
        forbids: &["dronehook-testkit", "xtask"],
        except: &[],
        why: "the binary never carries the test harness or the tools",
    },
    Rule {
        from: "dronehook-inspector",
        forbids: &["dronehook-*", "xtask"],
        except: &["dronehook-protocol", "dronehook-server", "dronehook-client"],
        why: "the inspector builds on the protocol, the server and the client alone",
    },
    Rule {
        from: "dronehook-server",
        forbids: &["dronehook-inspector"],
        except: &[],
        why: "only the command line uses the inspector",
    },
    Rule {
        from: "dronehook-client",
        forbids: &["dronehook-inspector"],
        except: &[],
        why: "only the command line uses the inspector",
    },
];

/// The resolved dependency graph: package names, and each package's normal
/// dependencies.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    /// Package id to name.
    names: BTreeMap<String, String>,
    /// Package id to the ids of its normal dependencies.
    normal: BTreeMap<String, Vec<String>>,
    /// The ids of the workspace's members.
    members: Vec<String>,
}

impl Graph {
    /// Reads the graph from `cargo metadata --format-version 1` output.
    pub(crate) fn from_metadata(json: &str) -> Result<Graph> {
        let meta: Value = serde_json::from_str(json).context("parsing cargo metadata")?;
        let str_of = |v: &Value, what: &str| -> Result<String> {
            v.as_str()
                .map(str::to_owned)
                .with_context(|| format!("cargo metadata: {what} is not a string"))
        };
        let mut graph = Graph::default();
        for package in meta["packages"]
            .as_array()
            .context("cargo metadata: no packages")?
        {
            graph.names.insert(
                str_of(&package["id"], "a package id")?,
                str_of(&package["name"], "a package name")?,
            );
        }
        for member in meta["workspace_members"]
            .as_array()
            .context("cargo metadata: no workspace_members")?
        {
            graph.members.push(str_of(member, "a workspace member")?);
        }
        let nodes = meta["resolve"]["nodes"]
            .as_array()
            .context("cargo metadata: no resolve graph (was --no-deps given?)")?;
        for node in nodes {
            let id = str_of(&node["id"], "a node id")?;
            let mut deps = Vec::new();
            for dep in node["deps"].as_array().map_or(&[][..], Vec::as_slice) {
                // `kind` is null for a normal dependency, "dev" or "build" otherwise;
                // one dependency may be several kinds at once.
                let normal = dep["dep_kinds"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()));
                if normal {
                    deps.push(str_of(&dep["pkg"], "a dependency's pkg")?);
                }
            }
            graph.normal.insert(id, deps);
        }
        Ok(graph)
    }

    fn name<'a>(&'a self, id: &'a str) -> &'a str {
        self.names.get(id).map_or(id, String::as_str)
    }

    /// For every package `start` reaches, the shortest path to it (breadth first).
    fn paths_from(&self, start: &str) -> BTreeMap<String, Vec<String>> {
        let mut paths = BTreeMap::new();
        paths.insert(start.to_owned(), vec![start.to_owned()]);
        let mut queue = VecDeque::from([start.to_owned()]);
        while let Some(id) = queue.pop_front() {
            for dep in self.normal.get(&id).map_or(&[][..], Vec::as_slice) {
                if paths.contains_key(dep) {
                    continue;
                }
                let mut path = paths[&id].clone();
                path.push(dep.clone());
                paths.insert(dep.clone(), path);
                queue.push_back(dep.clone());
            }
        }
        paths
    }
}

impl Rule {
    fn forbids_name(&self, name: &str) -> bool {
        if name == self.from || self.except.contains(&name) {
            return false;
        }
        self.forbids.iter().any(|f| match f.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *f,
        })
    }
}

/// Every broken rule, one line each, naming the path that breaks it.
pub(crate) fn violations(graph: &Graph, rules: &[Rule]) -> Vec<String> {
    let mut out = Vec::new();
    let mut reported = BTreeSet::new();
    for rule in rules {
        let starts: Vec<&String> = graph
            .members
            .iter()
            .filter(|id| graph.name(id) == rule.from)
            .collect();
        if starts.is_empty() {
            let line = format!(
                "{} is not a workspace member, so its dependency rules check nothing",
                rule.from
            );
            if !out.contains(&line) {
                out.push(line);
            }
            continue;
        }
        for start in starts {
            for (id, path) in graph.paths_from(start) {
                let name = graph.name(&id);
                if rule.forbids_name(name) && reported.insert((start.clone(), id.clone())) {
                    let chain: Vec<&str> = path.iter().map(|p| graph.name(p)).collect();
                    out.push(format!(
                        "{} depends on {name} ({}): {}",
                        rule.from,
                        rule.why,
                        chain.join(" -> ")
                    ));
                }
            }
        }
    }
    out
}

/// Runs `cargo metadata` on the workspace and checks [`RULES`].
pub(crate) fn check(root: &Path) -> Result<Vec<String>> {
    let output = Command::new(crate::ci::cargo())
        .current_dir(root)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            // Every feature on: an optional dependency behind a feature is still one
            // the crate can reach.
            "--all-features",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let json = String::from_utf8(output.stdout).context("cargo metadata's output is not UTF-8")?;
    Ok(violations(&Graph::from_metadata(&json)?, RULES))
}

#[cfg(test)]
mod tests {
    use super::{Graph, RULES, violations};

    /// Metadata for a workspace whose crates depend on each other as `edges` says
    /// (`(from, to, kind)`, kind `None` for a normal dependency); every name in the
    /// edges is a package, and those starting with `dronehook-` or named `xtask` are
    /// workspace members.
    fn metadata(edges: &[(&str, &str, Option<&str>)]) -> String {
        let mut names: Vec<&str> = edges.iter().flat_map(|(a, b, _)| [*a, *b]).collect();
        for member in [
            "dronehook-protocol",
            "dronehook-server",
            "dronehook-client",
            "dronehook-cli",
        ] {
            names.push(member);
        }
        names.sort_unstable();
        names.dedup();
        let id = |n: &str| format!("path+file:///w/{n}#{n}@0.1.0");
        let packages: Vec<_> = names
            .iter()
            .map(|n| serde_json::json!({"id": id(n), "name": n}))
            .collect();
        let members: Vec<_> = names
            .iter()
            .filter(|n| n.starts_with("dronehook-") || **n == "xtask")
            .map(|n| id(n))
            .collect();
        let nodes: Vec<_> = names
            .iter()
            .map(|n| {
                let deps: Vec<_> = edges
                    .iter()
                    .filter(|(a, _, _)| a == n)
                    .map(|(_, b, kind)| {
                        serde_json::json!({
                            "name": b.replace('-', "_"),
                            "pkg": id(b),
                            "dep_kinds": [{"kind": kind, "target": null}],
                        })
                    })
                    .collect();
                serde_json::json!({"id": id(n), "deps": deps})
            })
            .collect();
        serde_json::json!({
            "packages": packages,
            "workspace_members": members,
            "resolve": {"nodes": nodes},
        })
        .to_string()
    }

    /// The workspace as it is meant to be, with the audit crate.
    const ALLOWED: &[(&str, &str, Option<&str>)] = &[
        ("dronehook-protocol", "http", None),
        ("dronehook-protocol", "serde_json", None),
        ("dronehook-audit", "dronehook-protocol", None),
        ("dronehook-server", "dronehook-protocol", None),
        ("dronehook-server", "hyper", None),
        ("dronehook-server", "hyper-util", None),
        ("hyper", "tokio", None),
        ("hyper-util", "tokio", None),
        ("dronehook-client", "dronehook-protocol", None),
        ("dronehook-client", "hyper-util", None),
        // Tests may use the other side, and a dev-dependency may reach anything.
        ("dronehook-server", "dronehook-client", Some("dev")),
        ("dronehook-client", "dronehook-server", Some("dev")),
        ("dronehook-protocol", "tokio", Some("dev")),
        ("dronehook-protocol", "criterion", Some("dev")),
        ("criterion", "dronehook-cli", None),
        ("dronehook-cli", "dronehook-server", None),
        ("dronehook-cli", "dronehook-client", None),
        ("dronehook-cli", "dronehook-audit", None),
        ("xtask", "dronehook-cli", None),
        ("xtask", "dronehook-server", None),
        ("dronehook-inspector", "dronehook-protocol", None),
        ("dronehook-inspector", "dronehook-server", None),
        ("dronehook-inspector", "dronehook-client", None),
        ("dronehook-cli", "dronehook-inspector", None),
    ];

    fn check(extra: &[(&'static str, &'static str, Option<&'static str>)]) -> Vec<String> {
        let mut edges = ALLOWED.to_vec();
        edges.extend_from_slice(extra);
        let graph = Graph::from_metadata(&metadata(&edges)).expect("valid metadata");
        violations(&graph, RULES)
    }

    #[test]
    fn the_intended_graph_passes() {
        assert_eq!(check(&[]), Vec::<String>::new());
    }

    #[test]
    fn the_protocol_reaching_a_runtime_or_a_sibling_fails() {
        let io = "the protocol is sans-IO: no async runtime, no HTTP implementation";
        let sibling = "the protocol depends on no sibling crate";
        for (dep, expected) in [
            (
                "tokio",
                vec![format!(
                    "dronehook-protocol depends on tokio ({io}): dronehook-protocol -> tokio"
                )],
            ),
            (
                "hyper",
                vec![
                    format!(
                        "dronehook-protocol depends on hyper ({io}): dronehook-protocol -> hyper"
                    ),
                    // hyper brings tokio with it: reported on its own line.
                    format!(
                        "dronehook-protocol depends on tokio ({io}): dronehook-protocol -> hyper -> tokio"
                    ),
                ],
            ),
            (
                "hyper-util",
                vec![
                    format!(
                        "dronehook-protocol depends on hyper-util ({io}): dronehook-protocol -> hyper-util"
                    ),
                    format!(
                        "dronehook-protocol depends on tokio ({io}): dronehook-protocol -> hyper-util -> tokio"
                    ),
                ],
            ),
            (
                "dronehook-audit",
                vec![format!(
                    "dronehook-protocol depends on dronehook-audit ({sibling}): dronehook-protocol -> dronehook-audit"
                )],
            ),
            (
                "xtask",
                vec![
                    format!(
                        "dronehook-protocol depends on xtask ({sibling}): dronehook-protocol -> xtask"
                    ),
                    format!(
                        "dronehook-protocol depends on dronehook-cli ({sibling}): dronehook-protocol -> xtask -> dronehook-cli"
                    ),
                    format!(
                        "dronehook-protocol depends on dronehook-server ({sibling}): dronehook-protocol -> xtask -> dronehook-server"
                    ),
                    format!(
                        "dronehook-protocol depends on dronehook-client ({sibling}): dronehook-protocol -> xtask -> dronehook-cli -> dronehook-client"
                    ),
                    format!(
                        "dronehook-protocol depends on dronehook-audit ({sibling}): dronehook-protocol -> xtask -> dronehook-cli -> dronehook-audit"
                    ),
                    format!(
                        "dronehook-protocol depends on dronehook-inspector ({sibling}): dronehook-protocol -> xtask -> dronehook-cli -> dronehook-inspector"
                    ),
                    format!(
                        "dronehook-protocol depends on hyper ({io}): dronehook-protocol -> xtask -> dronehook-server -> hyper"
                    ),
                    format!(
                        "dronehook-protocol depends on hyper-util ({io}): dronehook-protocol -> xtask -> dronehook-server -> hyper-util"
                    ),
                    format!(
                        "dronehook-protocol depends on tokio ({io}): dronehook-protocol -> xtask -> dronehook-server -> hyper -> tokio"
                    ),
                ],
            ),
        ] {
            // Every crate depends on the protocol, so they all reach what it reaches;
            // the protocol's own lines are the ones under test here.
            let mut found: Vec<String> = check(&[("dronehook-protocol", dep, None)])
                .into_iter()
                .filter(|l| l.starts_with("dronehook-protocol "))
                .collect();
            let mut expected = expected;
            found.sort();
            expected.sort();
            assert_eq!(found, expected, "{dep}");
        }
    }

    #[test]
    fn a_forbidden_crate_reached_transitively_names_the_whole_path() {
        assert_eq!(
            check(&[
                ("dronehook-protocol", "some-helper", None),
                ("some-helper", "tokio", None),
            ]),
            vec![
                "dronehook-protocol depends on tokio (the protocol is sans-IO: no async \
                 runtime, no HTTP implementation): dronehook-protocol -> some-helper -> tokio"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn server_and_client_reaching_each_other_fails() {
        let why = "the server and the client never depend on each other";
        assert_eq!(
            check(&[("dronehook-server", "dronehook-client", None)]),
            vec![format!(
                "dronehook-server depends on dronehook-client ({why}): dronehook-server -> dronehook-client"
            )]
        );
        assert_eq!(
            check(&[
                ("dronehook-client", "middle", None),
                ("middle", "dronehook-server", None),
            ]),
            vec![format!(
                "dronehook-client depends on dronehook-server ({why}): dronehook-client -> middle -> dronehook-server"
            )]
        );
    }

    #[test]
    fn a_library_reaching_the_cli_fails() {
        let tools = "a library never depends on the command line or the tools";
        for (lib, why) in [
            ("dronehook-server", tools),
            ("dronehook-client", tools),
            (
                "dronehook-protocol",
                "the protocol depends on no sibling crate",
            ),
            (
                "dronehook-audit",
                "the audit catalog builds on the protocol alone",
            ),
        ] {
            let found = check(&[(lib, "dronehook-cli", None)]);
            assert!(
                found.contains(&format!(
                    "{lib} depends on dronehook-cli ({why}): {lib} -> dronehook-cli"
                )),
                "{lib}: {found:?}"
            );
            // Reported once, even where two rules forbid it.
            assert_eq!(
                found
                    .iter()
                    .filter(|l| l.starts_with(&format!("{lib} depends on dronehook-cli ")))
                    .count(),
                1,
                "{lib}: {found:?}"
            );
        }
        // The tools, too.
        assert!(
            check(&[("dronehook-server", "xtask", None)]).contains(&format!(
                "dronehook-server depends on xtask ({tools}): dronehook-server -> xtask"
            ))
        );
    }

    #[test]
    fn the_audit_crate_reaching_server_or_client_fails() {
        let why = "the audit catalog builds on the protocol alone";
        for dep in ["dronehook-server", "dronehook-client"] {
            assert_eq!(
                check(&[("dronehook-audit", dep, None)]),
                vec![format!(
                    "dronehook-audit depends on {dep} ({why}): dronehook-audit -> {dep}"
                )],
            );
        }
    }

    #[test]
    fn server_or_client_reaching_the_audit_crate_fails() {
        let why = "the hostile catalog is for tests and tools, not shipped in a library";
        let inspector = "the inspector builds on the protocol, the server and the client alone";
        for lib in ["dronehook-server", "dronehook-client"] {
            assert_eq!(
                check(&[(lib, "dronehook-audit", None)]),
                vec![
                    format!("{lib} depends on dronehook-audit ({why}): {lib} -> dronehook-audit"),
                    // The inspector uses both, so it reaches the catalog through either.
                    format!(
                        "dronehook-inspector depends on dronehook-audit ({inspector}): dronehook-inspector -> {lib} -> dronehook-audit"
                    ),
                ],
            );
            // A test may use it.
            assert_eq!(
                check(&[(lib, "dronehook-audit", Some("dev"))]),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn the_inspector_uses_protocol_server_client_and_only_the_cli_uses_it() {
        let own = "the inspector builds on the protocol, the server and the client alone";
        assert_eq!(
            check(&[("dronehook-inspector", "dronehook-audit", None)]),
            vec![format!(
                "dronehook-inspector depends on dronehook-audit ({own}): dronehook-inspector -> dronehook-audit"
            )]
        );
        let only = "only the command line uses the inspector";
        // The protocol's and the audit catalog's own rules already forbid every sibling.
        for lib in ["dronehook-server", "dronehook-client"] {
            let found = check(&[(lib, "dronehook-inspector", None)]);
            assert!(
                found.contains(&format!(
                    "{lib} depends on dronehook-inspector ({only}): {lib} -> dronehook-inspector"
                )),
                "{lib}: {found:?}"
            );
        }
    }

    #[test]
    fn only_normal_dependencies_count() {
        for kind in ["dev", "build"] {
            assert_eq!(
                check(&[("dronehook-protocol", "tokio", Some(kind))]),
                Vec::<String>::new(),
                "{kind}"
            );
        }
    }

    #[test]
    fn a_missing_crate_is_reported() {
        // A renamed protocol crate does not switch its rule off.
        let renamed: Vec<_> = ALLOWED
            .iter()
            .map(|&(a, b, k)| {
                let r = |n: &'static str| {
                    if n == "dronehook-protocol" {
                        "dronehook-core"
                    } else {
                        n
                    }
                };
                (r(a), r(b), k)
            })
            .collect();
        let mut json: serde_json::Value = serde_json::from_str(&metadata(&renamed)).expect("json");
        // `metadata` always adds the four crates as packages; drop the protocol's.
        let packages = json["packages"].as_array_mut().expect("packages");
        packages.retain(|p| p["name"] != "dronehook-protocol");
        let members = json["workspace_members"].as_array_mut().expect("members");
        members.retain(|m| {
            !m.as_str()
                .is_some_and(|s| s.ends_with("#dronehook-protocol@0.1.0"))
        });
        let graph = Graph::from_metadata(&json.to_string()).expect("valid metadata");
        assert_eq!(
            violations(&graph, RULES),
            vec![
                "dronehook-protocol is not a workspace member, so its dependency rules check nothing"
                    .to_owned(),
                // The audit crate's rule still sees the renamed crate as a sibling.
                "dronehook-audit depends on dronehook-core (the audit catalog builds on the \
                 protocol alone): dronehook-audit -> dronehook-core"
                    .to_owned(),
                "dronehook-inspector depends on dronehook-core (the inspector builds on the \
                 protocol, the server and the client alone): dronehook-inspector -> dronehook-core"
                    .to_owned(),
            ]
        );
    }

    #[test]
    fn metadata_without_a_resolve_graph_is_an_error() {
        let err =
            Graph::from_metadata(r#"{"packages": [], "workspace_members": [], "resolve": null}"#)
                .expect_err("no graph");
        assert_eq!(
            err.to_string(),
            "cargo metadata: no resolve graph (was --no-deps given?)"
        );
    }
}
