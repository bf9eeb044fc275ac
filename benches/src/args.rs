//! The flags that the side-by-side reports (`embed-report`, `train-report`) share, parsed in
//! one place; each report adds its own through a callback.

use std::path::PathBuf;

use crate::xquad::default_data_dir;

/// The shared flags and their defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerArgs {
    /// `--batch-size N` (default 32).
    pub batch_size: usize,
    /// `--threads N` (default 2).
    pub threads: usize,
    /// `--rounds N`.
    pub rounds: usize,
    /// `--only IMPL[,IMPL...]` (default: every implementation).
    pub only: Vec<String>,
    /// `--model SPEC` (default `e5-small`).
    pub model: String,
    /// `--data DIR` (default `$MULTIRET_DATA`, else the repository's `data/`).
    pub data: PathBuf,
    /// `--torch PYTHON`: the Python of the PyTorch peer (none: the peer is absent).
    pub torch: Option<PathBuf>,
}

/// The value of the flag being parsed, taken from the command line on request.
pub struct Value<'a> {
    flag: &'a str,
    rest: &'a mut dyn Iterator<Item = String>,
}

impl Value<'_> {
    /// The next argument, as given.
    pub fn string(&mut self) -> Result<String, String> {
        self.rest
            .next()
            .ok_or_else(|| format!("{} needs a value", self.flag))
    }

    /// The next argument as an integer > 0.
    pub fn positive(&mut self) -> Result<usize, String> {
        let v = self.string()?;
        v.parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{}: expected a positive integer, got {v:?}", self.flag))
    }
}

impl PeerArgs {
    /// The defaults, with every one of `impls` selected and `rounds` rounds.
    pub fn new(impls: &[&str], rounds: usize) -> Self {
        PeerArgs {
            batch_size: 32,
            threads: 2,
            rounds,
            only: impls.iter().map(|s| s.to_string()).collect(),
            model: "e5-small".into(),
            data: default_data_dir(),
            torch: None,
        }
    }

    /// Whether `--only` selected `imp`.
    pub fn wants(&self, imp: &str) -> bool {
        self.only.iter().any(|s| s == imp)
    }

    /// The precisions of the PyTorch peer that `--only` selected (`torch-f32`, `torch-bf16`),
    /// for its job file: the peer warms up only these.
    pub fn torch_precisions(&self) -> Vec<&'static str> {
        ["f32", "bf16"]
            .into_iter()
            .filter(|p| self.wants(&format!("torch-{p}")))
            .collect()
    }

    /// Parses `args` (without the program name): the shared flags here, any other through
    /// `extra(flag, value)`, which returns `Ok(false)` for a flag it does not know. `-h` prints
    /// `NAME EXTRA_USAGE [shared flags]` and exits.
    pub fn parse(
        mut self,
        impls: &[&str],
        name: &str,
        extra_usage: &str,
        args: impl IntoIterator<Item = String>,
        mut extra: impl FnMut(&str, &mut Value<'_>) -> Result<bool, String>,
    ) -> Result<Self, String> {
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut v = Value {
                flag: &flag,
                rest: &mut it,
            };
            match flag.as_str() {
                "--batch-size" => self.batch_size = v.positive()?,
                "--threads" => self.threads = v.positive()?,
                "--rounds" => self.rounds = v.positive()?,
                "--model" => self.model = v.string()?,
                "--data" => self.data = PathBuf::from(v.string()?),
                "--torch" => self.torch = Some(PathBuf::from(v.string()?)),
                "--only" => {
                    self.only = v
                        .string()?
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .collect();
                    if let Some(bad) = self.only.iter().find(|s| !impls.contains(&s.as_str())) {
                        return Err(format!("--only: unknown impl {bad:?} (one of {impls:?})"));
                    }
                }
                "-h" | "--help" => {
                    eprintln!(
                        "{name} {extra_usage}{}[--batch-size N] [--threads N] [--rounds N] \
                         [--only IMPL,...] [--model SPEC] [--data DIR] [--torch PYTHON]",
                        if extra_usage.is_empty() { "" } else { " " }
                    );
                    std::process::exit(0);
                }
                other => {
                    if !extra(other, &mut v)? {
                        return Err(format!("unknown argument {other:?}"));
                    }
                }
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn shared_and_extra_flags() {
        const IMPLS: [&str; 2] = ["a", "b"];
        let mut steps = 4;
        let a = PeerArgs::new(&IMPLS, 3)
            .parse(
                &IMPLS,
                "x",
                "[--steps N]",
                args("--rounds 5 --only b --steps 7"),
                |f, v| {
                    Ok(match f {
                        "--steps" => {
                            steps = v.positive()?;
                            true
                        }
                        _ => false,
                    })
                },
            )
            .unwrap();
        assert_eq!((a.rounds, steps, a.batch_size), (5, 7, 32));
        assert!(a.wants("b") && !a.wants("a"));
        let t = ["torch-f32", "torch-bf16", "x"];
        let b =
            PeerArgs::new(&t, 1).parse(&t, "x", "", args("--only x,torch-bf16"), |_, _| Ok(false));
        assert_eq!(b.unwrap().torch_precisions(), ["bf16"]);
        let none = |_: &str, _: &mut Value<'_>| Ok(false);
        let e = PeerArgs::new(&IMPLS, 1).parse(&IMPLS, "x", "", args("--only c"), none);
        assert!(e.unwrap_err().contains("unknown impl"));
        let e = PeerArgs::new(&IMPLS, 1).parse(&IMPLS, "x", "", args("--rounds 0"), none);
        assert!(e.unwrap_err().contains("positive integer"));
        let e = PeerArgs::new(&IMPLS, 1).parse(&IMPLS, "x", "", args("--steps 2"), none);
        assert!(e.unwrap_err().contains("unknown argument"));
        let e = PeerArgs::new(&IMPLS, 1).parse(&IMPLS, "x", "", args("--model"), none);
        assert!(e.unwrap_err().contains("needs a value"));
    }
}
