//! Drives `crates/cli/src/train.rs` (the `multiret train` command) on a tiny model.

mod common;

#[allow(dead_code)]
#[path = "../../cli/src/train.rs"]
mod train;

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: train::TrainArgs,
}

fn parse(argv: &[&str]) -> Result<train::TrainArgs, clap::Error> {
    let mut v = vec!["train"];
    v.extend_from_slice(argv);
    Cli::try_parse_from(v).map(|c| c.args)
}

#[test]
fn trains_a_tiny_model_from_the_command_line() {
    let dir = common::temp_dir("cli");
    let model = common::tiny_model_dir(1);
    let data = common::tiny_corpus(&dir, 12, &["de", "en", "fr"], 0);
    let out = dir.join("run");
    let (m, d, o) = (
        model.to_str().unwrap(),
        data.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let base = [
        "--model",
        m,
        "--train",
        d,
        "--sampler",
        "hybrid",
        "--alpha",
        "0.5",
        "--batch-size",
        "4",
        "--steps",
        "3",
        "--lr",
        "1e-3",
        "--seed",
        "7",
        "--out",
        o,
        "--quiet",
    ];
    let args = parse(&base).unwrap();
    assert_eq!(args.device, multiret_train::DeviceChoice::Cpu);
    train::run(&args).unwrap();
    let log = common::read_log(&out);
    assert_eq!(log.len(), 3);
    for (i, line) in log.iter().enumerate() {
        assert_eq!(line["step"], i as u64 + 1);
        for key in ["loss", "lr", "tokens_per_s"] {
            assert!(line[key].as_f64().unwrap().is_finite(), "{key} in {line}");
        }
    }
    assert!(out.join("checkpoint").join("model.safetensors").is_file());
    // A second run into the same directory needs --resume; with it, nothing is left to do.
    assert!(train::run(&args).is_err());
    let mut resume = base.to_vec();
    resume.push("--resume");
    train::run(&parse(&resume).unwrap()).unwrap();
    assert_eq!(common::read_log(&out).len(), 3);
}

#[test]
fn rejects_bad_flags() {
    let ok = [
        "--train",
        "x",
        "--sampler",
        "mono",
        "--batch-size",
        "4",
        "--steps",
        "2",
        "--out",
        "o",
    ];
    let args = parse(&ok).unwrap();
    assert_eq!(args.model, "e5-small");
    assert!(args.config().is_ok());
    let mut alpha = ok.to_vec();
    alpha.extend(["--alpha", "0.3"]);
    assert!(parse(&alpha).unwrap().config().is_err());
    let mut cuda = ok.to_vec();
    cuda.extend(["--device", "cuda:1"]);
    assert_eq!(
        parse(&cuda).unwrap().device,
        multiret_train::DeviceChoice::Cuda(1)
    );
    let mut bad = ok.to_vec();
    bad.extend(["--device", "tpu"]);
    assert!(parse(&bad).is_err());
    let mut eval = ok.to_vec();
    eval.extend(["--eval", "xquad-r"]);
    assert!(train::run(&parse(&eval).unwrap()).is_err());
    let mut tiny = ok.to_vec();
    tiny[5] = "1";
    assert!(parse(&tiny).unwrap().config().is_err());
}
