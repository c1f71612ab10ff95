//! `servswitch`: the command line. Each subcommand parses its flags and calls into the library;
//! every error a user can cause ends in one line on stderr and exit code 1.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use servswitch::codec_cli;

#[derive(Parser)]
#[command(
    name = "servswitch",
    version,
    about = "OpenFlow 1.3 controller for transparent VM migration across IP subnets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode a stream of binary OpenFlow 1.3 messages to text (ovs-ofctl-like) or JSON.
    Decode {
        /// Print JSON (an array of messages, as `encode` reads it) instead of text.
        #[arg(long)]
        json: bool,
        /// The input file, or - for standard input.
        file: PathBuf,
    },
    /// Encode JSON messages (as printed by `decode --json`) back to binary on standard output.
    Encode {
        /// The input file, or - for standard input.
        file: PathBuf,
    },
}

fn read_input(path: &PathBuf) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    if path.as_os_str() == "-" {
        io::stdin()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
    } else {
        buf = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(buf)
}

fn run(cli: Cli) -> Result<()> {
    let mut out = io::stdout().lock();
    match cli.command {
        Command::Decode { json, file } => {
            let input = read_input(&file)?;
            if json {
                let msgs = codec_cli::decode_all(&input)?;
                serde_json::to_writer_pretty(&mut out, &msgs)?;
                writeln!(out)?;
            } else {
                codec_cli::decode_text(&input, &mut out)?;
            }
        }
        Command::Encode { file } => {
            let input = read_input(&file)?;
            let text = String::from_utf8(input).context("input is not UTF-8 JSON")?;
            let bytes = codec_cli::encode_json(&text)?;
            out.write_all(&bytes)?;
        }
    }
    out.flush()?;
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A reader that went away (`servswitch decode x | head`) is not an error.
            if e.downcast_ref::<io::Error>()
                .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("servswitch: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
