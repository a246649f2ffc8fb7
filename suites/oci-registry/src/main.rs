//! `oci-registry --archive IMAGE.tar --listen 127.0.0.1:5000`: serves the
//! image archive read-only until stopped. The harness runs one on every node
//! of a cluster it creates, on the node's loopback, and points the node's
//! containerd at it (hosts.toml): pods then pull the application image as in
//! production, and `imagePullPolicy: Always` resolves the tag on every start.

mod archive;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Serve an OCI image archive read-only over the distribution API")]
struct Args {
    /// The image archive (`just image` writes target/image/cbam-api.tar).
    #[arg(long)]
    archive: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000")]
    listen: String,
    /// Print the registry hosts the archive's references name, one per
    /// line, and exit (serve-image.sh routes exactly those to this server).
    #[arg(long)]
    hosts: bool,
}

#[derive(Debug, thiserror::Error)]
enum RegistryError {
    #[error("open the image archive")]
    Archive(#[from] archive::ArchiveError),
    #[error("start the runtime")]
    Runtime(#[source] std::io::Error),
    #[error("listen on {0}")]
    Listen(String, #[source] std::io::Error),
    #[error("serve")]
    Serve(#[source] std::io::Error),
}

fn run(args: Args) -> Result<(), RegistryError> {
    let archive = Arc::new(archive::Archive::open(&args.archive)?);
    if args.hosts {
        for host in archive.hosts() {
            println!("{host}");
        }
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(RegistryError::Runtime)?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| RegistryError::Listen(args.listen.clone(), e))?;
        let mut tags: Vec<_> = archive.tags.keys().cloned().collect();
        tags.sort();
        println!("{}", serde_json::json!({ "listening": args.listen, "tags": tags }));
        axum::serve(listener, serve::router(archive)).await.map_err(RegistryError::Serve)
    })
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("oci-registry: {}", cbam_error_chain::render(&err));
            ExitCode::from(2)
        }
    }
}
