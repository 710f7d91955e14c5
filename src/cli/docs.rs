//! `khabar completions SHELL` and `khabar man`: shell completion scripts and manual pages,
//! generated from the same command definitions as `--help`.

use std::{io::Write, process::ExitCode};

use clap::CommandFactory;

use super::usage_error;
use crate::config::{Cli, CompletionsArgs, ManArgs};

/// Runs `khabar completions`.
pub fn completions(args: CompletionsArgs) -> ExitCode {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "khabar", &mut script);
    write_stdout(&script)
}

/// Runs `khabar man`.
pub fn man(args: ManArgs) -> ExitCode {
    let command = Cli::command();
    match args.out_dir {
        Some(dir) => match clap_mangen::generate_to(command, &dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => usage_error(format!(
                "cannot write the manual pages into {}: {e}",
                dir.display()
            )),
        },
        None => {
            let mut page = Vec::new();
            match clap_mangen::Man::new(command).render(&mut page) {
                Ok(()) => write_stdout(&page),
                Err(e) => usage_error(format!("cannot render the manual page: {e}")),
            }
        }
    }
}

fn write_stdout(bytes: &[u8]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => usage_error(format!("cannot write to standard output: {e}")),
    }
}
