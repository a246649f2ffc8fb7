//! `oci-registry --archive IMAGE.tar [--archive ..] --listen 127.0.0.1:5000`:
//! serves the image archives read-only until stopped (the application's and
//! the harness's tool image, side by side). The harness runs one on every node
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
    /// An image archive (`just image` writes target/image/cbam-api.tar and
    /// cbam-tool.tar); repeat for several, served as one registry.
    #[arg(long = "archive", required = true)]
    archives: Vec<PathBuf>,
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
    #[error("open the image archives")]
    Archive(#[from] archive::ArchiveError),
    #[error("start the runtime")]
    Runtime(#[source] std::io::Error),
    #[error("listen on {0}")]
    Listen(String, #[source] std::io::Error),
    #[error("serve")]
    Serve(#[source] std::io::Error),
}

fn run(args: Args) -> Result<(), RegistryError> {
    let mut archive = archive::Archive::default();
    for path in &args.archives {
        archive.merge(archive::Archive::open(path)?)?;
    }
    let archive = Arc::new(archive);
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
