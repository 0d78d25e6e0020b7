//! Chaos profiles: TOML documents that say which faults happen and when.
//!
//! The built-in ones live in `chaos-profiles/` and are embedded in the binary; any file path
//! works as well. See `chaos-profiles/README.md` for the format.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::duration::DurationRange;
use super::endpoints::{Endpoints, Resources};
use super::fault::{Anchor, Effect, Fault, FaultKind, Invalid, Keys, Like, Missing, Timing, Value};

/// A parsed, checked profile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// The built-in name or the file path.
    pub name: String,
    /// One line: what the profile does.
    pub description: String,
    /// What you see in Kubernetes with it.
    pub shows: String,
    /// The manifest to pair it with.
    pub manifest: String,
    pub startup: Startup,
    pub shutdown: Shutdown,
    pub faults: Vec<Fault>,
    /// A timeline file's `[endpoints]`: another application's ports and probe targets.
    pub endpoints: Option<Endpoints>,
    /// A timeline file's `[resources]`: its working set (a growth is among the faults, as a
    /// leak from start).
    pub resources: Option<Resources>,
}

/// The profile as written; faults are checked and typed afterwards.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawProfile {
    #[serde(default)]
    description: String,
    #[serde(default)]
    shows: String,
    #[serde(default)]
    manifest: String,
    #[serde(default)]
    startup: Startup,
    #[serde(default)]
    shutdown: Shutdown,
    #[serde(default)]
    fault: Vec<RawFault>,
    endpoints: Option<Endpoints>,
    resources: Option<Resources>,
}

/// One `[[fault]]` table as written, each value with where it stands in the text.
type RawFault = BTreeMap<String, toml::Spanned<toml::Value>>;

/// Keys every fault takes.
const TIMING_KEYS: [&str; 4] = ["type", "from", "after", "probability"];
/// Keys of faults that last a window.
const WINDOW_KEYS: [&str; 2] = ["for", "every"];

/// A `[[fault]]` table read as fault keys.
struct TableKeys<'a>(&'a RawFault);

impl Keys for TableKeys<'_> {
    fn get(&self, key: &'static str, like: Like) -> Result<Option<Value>, Invalid> {
        let Some(value) = self.0.get(key) else {
            return Ok(None);
        };
        let value = value.get_ref();
        let expected = |what: &str| Invalid::new(key, format!("expected {what}, got {value}"));
        Ok(Some(match (like, value) {
            (Like::Number, toml::Value::Integer(i)) => Value::Number(*i as f64),
            (Like::Number, toml::Value::Float(x)) => Value::Number(*x),
            (Like::Number, _) => return Err(expected("a number")),
            (Like::Duration, toml::Value::String(text)) => {
                Value::Duration(text.parse().map_err(|e| Invalid::new(key, e))?)
            }
            (Like::Duration, _) => return Err(expected("a duration in quotes such as \"30s\"")),
            (Like::Word, toml::Value::String(word)) => Value::Word(word.clone()),
            (Like::Word, _) => return Err(expected("a string")),
            (Like::Statuses, toml::Value::Array(items)) => Value::Statuses(
                items
                    .iter()
                    .map(|item| {
                        item.as_integer()
                            .and_then(|i| u16::try_from(i).ok())
                            .ok_or_else(|| expected("a list of status codes such as [500, 503]"))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            (Like::Statuses, _) => {
                return Err(expected("a list of status codes such as [500, 503]"));
            }
            (Like::Flag, toml::Value::Boolean(b)) => Value::Flag(*b),
            (Like::Flag, _) => return Err(expected("true or false")),
        }))
    }
}

/// Types one `[[fault]]` table, refusing keys that belong to other types, through the one
/// constructor and check of `fault`. Errors name the line and the key.
fn fault_from_table(index: usize, table: &RawFault, text: &str) -> Result<Fault, String> {
    let at = |key: &str| match table.get(key) {
        Some(value) => format!(
            "line {}: fault[{index}].{key}",
            line_of(text, value.span().start)
        ),
        None => format!("fault[{index}].{key}"),
    };
    let keys = TableKeys(table);
    let word = |key: &'static str| match keys.get(key, Like::Word) {
        Ok(Some(Value::Word(w))) => Ok(Some(w)),
        Ok(_) => Ok(None),
        Err(e) => Err(format!("{}: {}", at(key), e.message)),
    };
    let Some(name) = word("type")? else {
        return Err(format!(
            "fault[{index}].type: required; one of {}",
            FaultKind::names()
        ));
    };
    let kind = FaultKind::from_name(&name).ok_or_else(|| {
        format!(
            "{}: unknown fault type `{name}`; expected one of {}",
            at("type"),
            FaultKind::names()
        )
    })?;
    for key in table.keys() {
        let applies = TIMING_KEYS.contains(&key.as_str())
            || (kind.can_stop() && WINDOW_KEYS.contains(&key.as_str()))
            || kind.keys().contains(&key.as_str());
        if applies {
            continue;
        }
        let known = WINDOW_KEYS.contains(&key.as_str())
            || FaultKind::ALL
                .iter()
                .any(|k| k.keys().contains(&key.as_str()));
        return Err(if known {
            format!("{}: does not apply to a fault of type {kind}", at(key))
        } else {
            format!("{}: unknown key", at(key))
        });
    }
    let invalid = |e: Invalid| format!("{}: {}", at(e.key), e.message);
    let duration = |key: &'static str| match keys.get(key, Like::Duration).map_err(invalid)? {
        Some(Value::Duration(d)) => Ok(Some(d)),
        _ => Ok::<_, String>(None),
    };
    let from = match word("from")?.as_deref() {
        None | Some("ready") => Anchor::Ready,
        Some("start") => Anchor::Start,
        Some(other) => {
            return Err(format!(
                "{}: expected start or ready, got `{other}`",
                at("from")
            ));
        }
    };
    let probability = match keys.get("probability", Like::Number).map_err(invalid)? {
        Some(Value::Number(p)) => Some(p),
        _ => None,
    };
    let fault = Fault {
        timing: Timing {
            from,
            after: duration("after")?,
            duration: duration("for")?,
            every: duration("every")?,
            probability,
        },
        effect: Effect::from_keys(kind, &keys, Missing::Required).map_err(invalid)?,
    };
    fault.check().map_err(invalid)?;
    Ok(fault)
}

/// The line of a byte offset, counted from 1.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].lines().count().max(1)
}

/// Delays before serving.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Startup {
    /// Before the port opens: TCP probes and connections fail.
    pub bind_delay: Option<DurationRange>,
    /// Port open, model loading: `/startupz` and `/readyz` answer 503.
    pub load_delay: Option<DurationRange>,
    /// Whether `/livez` passes while the model loads (default true). False models a server that
    /// cannot answer health checks until it has started, which is what startup probes are for.
    pub live_while_loading: Option<bool>,
}

/// SIGTERM handling.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Shutdown {
    /// Ignore SIGTERM, so only SIGKILL ends the process.
    #[serde(default)]
    pub ignore_sigterm: bool,
    /// A timeline file's: how long after SIGTERM the process exits by itself.
    pub exit_after: Option<DurationRange>,
    /// A timeline file's: whether readiness fails the moment SIGTERM comes (default true, as
    /// this server does), or only once the process stops accepting.
    pub unready_on_sigterm: Option<bool>,
}

/// A built-in profile: its name and TOML text.
pub struct Builtin {
    pub name: &'static str,
    pub text: &'static str,
}

macro_rules! builtins {
    ($($name:literal),* $(,)?) => {
        /// Every built-in profile, in the order `profiles` lists them.
        pub const BUILTINS: &[Builtin] = &[
            $(Builtin { name: $name, text: include_str!(concat!("../../chaos-profiles/", $name, ".toml")) }),*
        ];
    };
}

builtins!(
    "none",
    "v2",
    "slow-start",
    "crash-loop",
    "liveness-hang",
    "unhealthy",
    "flapping-readiness",
    "latency",
    "errors",
    "memory-leak",
    "cpu-burn",
    "slow-shutdown",
    "overload",
);

impl Profile {
    /// Parses a profile's TOML; errors name the key and line.
    pub fn parse(name: &str, text: &str) -> Result<Self, String> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            let message = e.message().replace('\n', " ");
            match line {
                Some(line) => format!("line {line}: {message}"),
                None => message,
            }
        })?;
        let mut faults = raw
            .fault
            .iter()
            .enumerate()
            .map(|(i, table)| fault_from_table(i, table, text))
            .collect::<Result<Vec<_>, String>>()?;
        if let Some(endpoints) = &raw.endpoints {
            endpoints.check()?;
        }
        if let Some(resources) = &raw.resources {
            resources.check()?;
            // Memory that grows from the start is a leak from the start.
            if let Some(growth) = resources.growth_mib_per_hour {
                faults.push(Fault {
                    timing: Timing {
                        from: Anchor::Start,
                        ..Timing::default()
                    },
                    effect: Effect::Leak {
                        mib_per_second: growth / 3600.0,
                        max_mib: None,
                    },
                });
            }
        }
        Ok(Profile {
            name: name.to_string(),
            description: raw.description,
            shows: raw.shows,
            manifest: raw.manifest,
            startup: raw.startup,
            shutdown: raw.shutdown,
            faults,
            endpoints: raw.endpoints,
            resources: raw.resources,
        })
    }

    /// A built-in name or a file path, as `CHAOS_PROFILE` takes it.
    pub fn load(name_or_path: &str) -> Result<Self, String> {
        if let Some(builtin) = BUILTINS.iter().find(|b| b.name == name_or_path) {
            return Profile::parse(builtin.name, builtin.text).map_err(|e| {
                format!("CHAOS_PROFILE={name_or_path}: built-in profile is broken: {e}")
            });
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(format!(
                "CHAOS_PROFILE={name_or_path}: no built-in profile or file of that name; expected one of {} or a path to a .toml file",
                BUILTINS
                    .iter()
                    .map(|b| b.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("CHAOS_PROFILE={name_or_path}: cannot read: {e}"))?;
        // A mounted profile (e.g. /etc/chaos-inference/profiles/v2.toml) is named by its file stem,
        // so logs and termination messages read `v2: ...`, not the mount path.
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(name_or_path);
        Profile::parse(name, &text).map_err(|e| format!("CHAOS_PROFILE={name_or_path}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses_and_says_what_it_shows() {
        for b in BUILTINS {
            let p = Profile::parse(b.name, b.text).unwrap_or_else(|e| panic!("{}: {e}", b.name));
            assert!(!p.description.is_empty(), "{} has no description", b.name);
            assert!(!p.manifest.is_empty(), "{} names no manifest", b.name);
        }
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let e = Profile::parse("x", "[[fault]]\ntype = \"crash\"\nafter = \"soon\"\n").unwrap_err();
        assert!(e.contains("line 1") || e.contains("line 3"), "{e}");
        assert!(e.contains("expected a duration"), "{e}");
        let e = Profile::parse("x", "[startup]\nbind-dely = \"1s\"\n").unwrap_err();
        assert!(e.contains("bind-dely"), "{e}");
        let e = Profile::parse("x", "[[fault]]\ntype = \"explode\"\n").unwrap_err();
        assert!(e.contains("explode"), "{e}");
    }

    #[test]
    fn values_out_of_their_domain_are_refused() {
        let cases = [
            (
                "[[fault]]\ntype = \"errors\"\nrate = 1.5\n",
                "fault[0].rate",
            ),
            (
                "[[fault]]\ntype = \"errors\"\nrate = 0.5\nstatuses = [404]\n",
                "fault[0].statuses",
            ),
            (
                "[[fault]]\ntype = \"unready\"\nfor = \"20s\"\nevery = \"10s\"\n",
                "fault[0].for",
            ),
            (
                "[[fault]]\ntype = \"crash\"\nevery = \"10s\"\n",
                "fault[0].every",
            ),
            ("[[fault]]\ntype = \"crash\"\ncores = 1\n", "fault[0].cores"),
            ("[[fault]]\ntype = \"leak\"\n", "fault[0].mib-per-second"),
            ("[[fault]]\ntype = \"burn\"\ncores = 0\n", "fault[0].cores"),
            (
                "[[fault]]\ntype = \"hang\"\nprobability = 2\n",
                "fault[0].probability",
            ),
        ];
        for (text, key) in cases {
            let e = Profile::parse("x", text).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn profiles_from_files_are_named_by_their_stem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("my-profile.toml");
        std::fs::write(&path, "description = \"x\"\n").unwrap();
        assert_eq!(
            Profile::load(path.to_str().unwrap()).unwrap().name,
            "my-profile"
        );
    }

    #[test]
    fn unknown_names_list_the_builtins() {
        let e = Profile::load("no-such-profile").unwrap_err();
        assert!(e.starts_with("CHAOS_PROFILE=no-such-profile"), "{e}");
        assert!(e.contains("flapping-readiness"), "{e}");
    }

    /// The same limit and message as `CHAOS_BURN_CORES` and the admin route's `cores`.
    #[test]
    fn limits_match_the_other_sources() {
        let e = Profile::parse("x", "[[fault]]\ntype = \"burn\"\ncores = 1000\n").unwrap_err();
        assert_eq!(
            e,
            "line 3: fault[0].cores: expected a number above 0 and at most 256, got 1000"
        );
        let e = Profile::parse(
            "x",
            "[[fault]]\ntype = \"leak\"\nmib-per-second = 1\nmax-mib = 0\n",
        )
        .unwrap_err();
        assert!(
            e.ends_with("fault[0].max-mib: expected a number above 0 and at most 1048576, got 0"),
            "{e}"
        );
    }
}
