//! Layering: defaults < `--config FILE` (must exist) < `LAGOM_*` environment (`__` nests) <
//! command-line flags. Every unknown key or wrong type is reported with its source.

use std::path::{Path, PathBuf};

use figment::error::Kind;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use super::{Config, ConfigError};
use crate::algo::AlgorithmName;

/// The prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "LAGOM_";

/// `LAGOM_*` variables that are not configuration keys: the log format and level (see
/// [`crate::logging`]), which every lagom process reads and passes on to its children, the
/// kernels' instruction-set cap ([`crate::kernels::SIMD_ENV`]) and the heap's page size
/// ([`crate::compute::HUGE_PAGES_ENV`]).
const NOT_CONFIGURATION: &[&str] = &["log_format", "log_level", "simd", "huge_pages"];

/// Command-line flags that choose the configuration file and override keys.
#[derive(clap::Args, Debug, Clone, Default, PartialEq)]
pub struct CliOverrides {
    /// TOML configuration file (must exist).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run directory for metrics.jsonl and summary.json (`run.dir`).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Run seed (`run.seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of workers (`cluster.workers`).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Algorithm (`algorithm.name`).
    #[arg(long, value_parser = algorithm_names())]
    pub algorithm: Option<AlgorithmName>,
    /// Learning rate (`algorithm.lr`).
    #[arg(long)]
    pub lr: Option<f64>,
    /// The server's address as a worker dials it (`net.server`), e.g. `10.0.0.1:7070`.
    #[arg(long, value_name = "HOST:PORT")]
    pub server: Option<String>,
    /// This worker's slot, 0-based (`net.worker`).
    #[arg(long)]
    pub worker: Option<usize>,
    /// Continue a server run from its checkpoint (`server.resume`).
    #[arg(long)]
    pub resume: bool,
    /// Any key, e.g. `--set algorithm.momentum=0.5` (repeatable; values parse like env values).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// The `--algorithm` parser: every configuration name, listed in `--help` (the names live in
/// `algo`, which knows nothing of the command line).
fn algorithm_names() -> impl clap::builder::TypedValueParser<Value = AlgorithmName> {
    let names = AlgorithmName::ALL
        .into_iter()
        .chain(AlgorithmName::DECENTRALIZED)
        .map(AlgorithmName::as_str);
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(names)
        .map(|name| AlgorithmName::from_name(&name).unwrap_or_default())
}

/// Where the configuration came from, for `lagom config` and logs.
#[derive(Debug, Clone)]
pub struct ConfigSources {
    /// The figment that produced the configuration (answers "which source set key X").
    pub figment: Figment,
}

impl ConfigSources {
    /// Names the source that supplied `key` (dotted path), e.g. `file config/x.toml`.
    pub fn source_of(&self, key: &str) -> String {
        self.figment
            .find_metadata(key)
            .map(|md| describe_source(md, key))
            .unwrap_or_else(|| DEFAULT_SOURCE.to_string())
    }
}

/// How messages name the built-in defaults.
const DEFAULT_SOURCE: &str = "default";

/// The built-in defaults, as a figment provider that messages name "default" (figment's own
/// provider would be named after the Rust type).
struct Defaults;

impl Provider for Defaults {
    fn metadata(&self) -> Metadata {
        Metadata::named(DEFAULT_SOURCE)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(Config::default()).data()
    }
}

/// The parenthesis after a message about `key`: `(default)` or `(set by SOURCE)`.
fn attribution(source: &str) -> String {
    if source == DEFAULT_SOURCE {
        "(default)".to_string()
    } else {
        format!("(set by {source})")
    }
}

/// One command-line override, as a figment provider named after the flag.
struct FlagProvider {
    flag: String,
    key: String,
    value: Value,
}

impl Provider for FlagProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("command-line flag {}", self.flag))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        match figment::util::nest(&self.key, self.value.clone()) {
            Value::Dict(_, dict) => Ok(Profile::Default.collect(dict)),
            _ => Err(figment::Error::from(format!(
                "`{}` is not a key path",
                self.key
            ))),
        }
    }
}

fn flag(flag: &str, key: &str, value: Value) -> FlagProvider {
    FlagProvider {
        flag: flag.to_string(),
        key: key.to_string(),
        value,
    }
}

/// Loads the configuration from the defaults, the file, the environment and the flags, then
/// checks value ranges.
pub fn load(cli: &CliOverrides) -> Result<(Config, ConfigSources), ConfigError> {
    let mut figment = Figment::from(Defaults);
    if let Some(path) = &cli.config {
        check_readable(path)?;
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(
        Env::prefixed(ENV_PREFIX)
            .ignore(NOT_CONFIGURATION)
            .split("__"),
    );
    for provider in flag_providers(cli)? {
        figment = figment.merge(provider);
    }
    let config: Config = figment
        .extract()
        .map_err(|e| ConfigError::Invalid(describe_errors(&figment, e)))?;
    let sources = ConfigSources { figment };
    let problems = config.validate();
    if !problems.is_empty() {
        let lines = problems
            .into_iter()
            .map(|(key, message)| {
                format!("{key} {message} {}", attribution(&sources.source_of(key)))
            })
            .collect();
        return Err(ConfigError::Invalid(lines));
    }
    Ok((config, sources))
}

fn check_readable(path: &Path) -> Result<(), ConfigError> {
    std::fs::metadata(path)
        .map_err(|e| e.to_string())
        .and_then(|m| {
            if m.is_file() {
                Ok(())
            } else {
                Err("not a regular file".to_string())
            }
        })
        .map_err(|reason| ConfigError::FileUnreadable {
            path: path.to_path_buf(),
            reason,
        })
}

fn flag_providers(cli: &CliOverrides) -> Result<Vec<FlagProvider>, ConfigError> {
    let mut providers = Vec::new();
    for entry in &cli.set {
        let (key, value) = entry
            .split_once('=')
            .ok_or_else(|| ConfigError::BadSetFlag(entry.clone()))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(ConfigError::BadSetFlag(entry.clone()));
        }
        let value: Value = value.parse().unwrap_or_else(|never| match never {});
        providers.push(flag(&format!("--set {key}"), key, value));
    }
    if let Some(dir) = &cli.run_dir {
        providers.push(flag(
            "--run-dir",
            "run.dir",
            Value::from(dir.display().to_string()),
        ));
    }
    if let Some(seed) = cli.seed {
        providers.push(flag("--seed", "run.seed", Value::from(seed)));
    }
    if let Some(workers) = cli.workers {
        providers.push(flag(
            "--workers",
            "cluster.workers",
            Value::from(workers as u64),
        ));
    }
    if let Some(name) = cli.algorithm {
        providers.push(flag(
            "--algorithm",
            "algorithm.name",
            Value::from(name.as_str()),
        ));
    }
    if let Some(lr) = cli.lr {
        providers.push(flag("--lr", "algorithm.lr", Value::from(lr)));
    }
    if let Some(server) = &cli.server {
        providers.push(flag("--server", "net.server", Value::from(server.as_str())));
    }
    if cli.resume {
        providers.push(flag("--resume", "server.resume", Value::from(true)));
    }
    if let Some(worker) = cli.worker {
        providers.push(flag("--worker", "net.worker", Value::from(worker as u64)));
    }
    Ok(providers)
}

/// Names a provider for a message: the file path, the exact environment variable, or the flag.
fn describe_source(md: &Metadata, key: &str) -> String {
    match &md.source {
        Some(Source::File(path)) => format!("file {}", path.display()),
        _ if md.name.contains("environment") => {
            let var: Vec<String> = key.split('.').map(|k| k.to_ascii_uppercase()).collect();
            format!("environment variable {ENV_PREFIX}{}", var.join("__"))
        }
        _ => md.name.to_string(),
    }
}

/// One line per problem: `key: what is wrong (set by SOURCE)`, or `(default)`.
fn describe_errors(figment: &Figment, error: figment::Error) -> Vec<String> {
    error
        .into_iter()
        .map(|e| {
            let mut path = e.path.clone();
            let what = match &e.kind {
                Kind::UnknownField(field, expected) => {
                    if path.last() != Some(field) {
                        path.push(field.clone());
                    }
                    format!("unknown key (known keys here: {})", expected.join(", "))
                }
                Kind::UnknownVariant(variant, expected) => {
                    format!(
                        "unknown value `{variant}` (expected one of: {})",
                        expected.join(", ")
                    )
                }
                other => other.to_string(),
            };
            let key = path.join(".");
            let source = figment
                .find_metadata(&key)
                .or(e.metadata.as_ref())
                .map(|md| describe_source(md, &key))
                .unwrap_or_else(|| DEFAULT_SOURCE.to_string());
            if key.is_empty() {
                format!("{what} (in {source})")
            } else {
                format!("{key}: {what} {}", attribution(&source))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    // figment::Jail closures must return figment::Error, which is large.
    #![allow(clippy::result_large_err)]

    use super::*;

    fn load_in_jail(cli: CliOverrides) -> Result<Config, ConfigError> {
        load(&cli).map(|(c, _)| c)
    }

    #[test]
    fn environment_overrides_file_and_flags_override_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[algorithm]\nlr = 0.05\nmomentum = 0.5\n[cluster]\nworkers = 8\n",
            )?;
            jail.set_env("LAGOM_ALGORITHM__LR", "0.2");
            jail.set_env("LAGOM_HETEROGENEITY__SLOW_FRACTION", "0.25");
            let cli = CliOverrides {
                config: Some("c.toml".into()),
                ..Default::default()
            };
            let c = load_in_jail(cli.clone()).map_err(|e| e.to_string())?;
            assert_eq!(c.algorithm.lr, 0.2, "env beats file");
            assert_eq!(c.algorithm.momentum, 0.5, "file beats defaults");
            assert_eq!(c.cluster.workers, 8);
            assert_eq!(
                c.heterogeneity.slow_fraction, 0.25,
                "underscored keys survive `__` nesting"
            );
            let c = load_in_jail(CliOverrides {
                lr: Some(0.3),
                set: vec!["algorithm.momentum=0.7".into()],
                ..cli
            })
            .map_err(|e| e.to_string())?;
            assert_eq!(c.algorithm.lr, 0.3, "flag beats env");
            assert_eq!(c.algorithm.momentum, 0.7, "--set beats file");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_source() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[algorithm]\nlearning_rate = 0.05\n")?;
            let err = load_in_jail(CliOverrides {
                config: Some("c.toml".into()),
                ..Default::default()
            })
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
            assert!(err.contains("algorithm.learning_rate"), "{err}");
            assert!(err.contains("c.toml"), "{err}");

            jail.set_env("LAGOM_SIM__UPDATEZ", "5");
            let err = load_in_jail(CliOverrides::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("sim.updatez"), "{err}");
            assert!(
                err.contains("environment variable LAGOM_SIM__UPDATEZ"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn wrong_types_and_bad_values_are_reported_with_their_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LAGOM_CLUSTER__WORKERS", "many");
            let err = load_in_jail(CliOverrides::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("cluster.workers"), "{err}");
            assert!(err.contains("LAGOM_CLUSTER__WORKERS"), "{err}");
            jail.set_env("LAGOM_CLUSTER__WORKERS", "4");
            jail.set_env("LAGOM_ALGORITHM__MOMENTUM", "1.5");
            let err = load_in_jail(CliOverrides::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains("algorithm.momentum must be in [0, 1)"),
                "{err}"
            );
            assert!(err.contains("LAGOM_ALGORITHM__MOMENTUM"), "{err}");
            jail.set_env("LAGOM_ALGORITHM__MOMENTUM", "0.9");
            jail.set_env("LAGOM_SIM__LOGISTIC__BATCH_SIZE", "0");
            let err = load_in_jail(CliOverrides::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains("sim.logistic.batch_size must be ≥ 1")
                    && err.contains("environment variable LAGOM_SIM__LOGISTIC__BATCH_SIZE"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        figment::Jail::expect_with(|_| {
            let err = load_in_jail(CliOverrides {
                config: Some("nope.toml".into()),
                ..Default::default()
            });
            assert!(matches!(err, Err(ConfigError::FileUnreadable { .. })));
            Ok(())
        });
    }

    #[test]
    fn messages_name_the_default_as_default_and_a_flag_as_its_flag() {
        figment::Jail::expect_with(|_| {
            let cli = CliOverrides {
                lr: Some(0.3),
                ..Default::default()
            };
            let (_, sources) = load(&cli).expect("loads");
            assert_eq!(
                attribution(&sources.source_of("algorithm.momentum")),
                "(default)"
            );
            assert_eq!(
                attribution(&sources.source_of("algorithm.lr")),
                "(set by command-line flag --lr)"
            );
            Ok(())
        });
    }

    #[test]
    fn the_log_simd_and_heap_variables_are_the_ones_kept_out_of_the_configuration() {
        for var in [
            crate::logging::LOG_FORMAT_ENV,
            crate::logging::LOG_LEVEL_ENV,
            crate::kernels::SIMD_ENV,
            crate::compute::HUGE_PAGES_ENV,
        ] {
            let key = var
                .strip_prefix(ENV_PREFIX)
                .expect("a LAGOM_ variable")
                .to_ascii_lowercase();
            assert!(NOT_CONFIGURATION.contains(&key.as_str()), "{var}");
        }
        figment::Jail::expect_with(|jail| {
            jail.set_env(crate::logging::LOG_FORMAT_ENV, "json");
            jail.set_env(crate::logging::LOG_LEVEL_ENV, "debug");
            jail.set_env(crate::kernels::SIMD_ENV, "baseline");
            jail.set_env(crate::compute::HUGE_PAGES_ENV, "0");
            load(&CliOverrides::default()).expect("not read as configuration keys");
            Ok(())
        });
    }
}
