//! `oci-image --binary PATH --ref NAME:TAG [--ref ..] --out FILE`: a scratch
//! image holding one static binary, written only when its digest changed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

mod elf;
mod layout;

#[derive(Debug, Parser)]
struct Args {
    /// The static executable to package.
    #[arg(long)]
    binary: PathBuf,
    /// Image references (repeat for several tags of the same image).
    #[arg(long = "ref", required = true)]
    references: Vec<String>,
    /// Where the binary lives in the image.
    #[arg(long, default_value = "/usr/local/bin/app")]
    entrypoint: String,
    #[arg(long, default_value_t = 1000)]
    uid: u32,
    #[arg(long)]
    port: Vec<u16>,
    /// Extra file, SRC:DEST[:MODE] (octal mode, default 644).
    #[arg(long = "file")]
    files: Vec<String>,
    /// Symbolic link, DEST:TARGET.
    #[arg(long = "link")]
    links: Vec<String>,
    /// Output tarball; FILE.digest records what it holds.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("package {0}")]
    Elf(PathBuf, #[source] elf::ElfError),
    #[error("build the image")]
    Layout(#[from] layout::LayoutError),
    #[error("use {0:?}: expected {1}")]
    Spec(String, &'static str),
    #[error("write {0}")]
    Write(PathBuf, #[source] std::io::Error),
}

fn run(args: &Args) -> Result<(), Error> {
    let binary = std::fs::read(&args.binary).map_err(|e| Error::Read(args.binary.clone(), e))?;
    elf::require_static(&binary).map_err(|e| Error::Elf(args.binary.clone(), e))?;
    let mut files = Vec::new();
    for spec in &args.files {
        let mut parts = spec.splitn(3, ':');
        let (Some(src), Some(dest)) = (parts.next(), parts.next()) else {
            return Err(Error::Spec(spec.clone(), "SRC:DEST[:MODE]"));
        };
        let mode = match parts.next() {
            Some(m) => u32::from_str_radix(m, 8).map_err(|_| Error::Spec(spec.clone(), "an octal mode"))?,
            None => 0o644,
        };
        let data = std::fs::read(src).map_err(|e| Error::Read(PathBuf::from(src), e))?;
        files.push((dest.to_owned(), mode, data));
    }
    let links = args
        .links
        .iter()
        .map(|l| {
            l.split_once(':').map(|(d, t)| (d.to_owned(), t.to_owned())).ok_or(Error::Spec(l.clone(), "DEST:TARGET"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let spec = layout::ImageSpec {
        files,
        links,
        references: args.references.clone(),
        entrypoint: args.entrypoint.clone(),
        binary,
        uid: args.uid,
        ports: args.port.clone(),
    };
    let (tarball, digest) = layout::build(&spec)?;
    let stamp = args.out.with_extension("digest");
    let recorded = format!("{digest} {}\n", args.references.join(" "));
    if args.out.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == recorded) {
        println!("oci-image: {} up to date ({digest})", args.out.display());
        return Ok(());
    }
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::Write(dir.to_owned(), e))?;
    }
    let partial = args.out.with_extension("partial");
    std::fs::write(&partial, &tarball).map_err(|e| Error::Write(partial.clone(), e))?;
    std::fs::rename(&partial, &args.out).map_err(|e| Error::Write(args.out.clone(), e))?;
    std::fs::write(&stamp, recorded).map_err(|e| Error::Write(stamp.clone(), e))?;
    println!(
        "oci-image: wrote {} ({} bytes, {digest}) for {}",
        args.out.display(),
        tarball.len(),
        args.references.join(", ")
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", cbam_error_chain::render(&err));
            ExitCode::from(2)
        }
    }
}
