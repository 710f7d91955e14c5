//! A real full disk: khabar on a small tmpfs, ingested into until it fills. The client gets a
//! clear error naming the disk, the process stays up, and a copy of the directory on a disk with
//! room serves every acknowledged article. Mounting needs root: without it the test says
//! SKIPPED, and fails instead when `KHABAR_REQUIRE_DISK_FULL=1` (as `.ci/run` sets as root).

use std::{path::Path, process::Command, time::Duration};

use khabar::pb::khabar::v1::{
    self as pb, article_service_client::ArticleServiceClient,
    ingest_service_client::IngestServiceClient,
};
use tonic::Code;

use crate::common::{ChildServer, WAIT, cannot_run, copy_dir, run_bounded, seed_variant};

/// Size of the file system: room for the first log segment (4 MiB) and the index, not for the
/// second segment (8 MiB).
const TMPFS_SIZE: &str = "10m";
/// Ingests tried at most before the disk must have filled.
const MAX_INGESTS: usize = 5_000;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mounted {
    dir: tempfile::TempDir,
}

impl Mounted {
    fn new() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let output = run_bounded(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "tmpfs"])
                .arg(dir.path()),
            None,
            Duration::from_secs(10),
        )
        .map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(Self { dir })
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = run_bounded(
            Command::new("umount").arg(self.dir.path()),
            None,
            Duration::from_secs(10),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_named_and_loses_nothing_acknowledged() {
    let mounted = match Mounted::new() {
        Ok(mounted) => mounted,
        Err(why) => {
            cannot_run(
                "KHABAR_REQUIRE_DISK_FULL",
                "disk_full",
                &format!("cannot mount a tmpfs to fill (mount: {why})"),
            );
            return;
        }
    };
    let data_dir = mounted.path().join("data");
    let mut server = ChildServer::start(&data_dir);
    let channel = server.channel().await;
    let mut ingest = IngestServiceClient::new(channel.clone());
    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for n in 0..MAX_INGESTS {
        match ingest.ingest(seed_variant(n)).await {
            Ok(response) => acknowledged.push(response.into_inner()),
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
    }
    let refusal = refusal.expect("the disk filled up");
    assert!(
        !acknowledged.is_empty(),
        "the disk had room for some articles"
    );
    assert!(
        matches!(refusal.code(), Code::ResourceExhausted | Code::Unavailable),
        "{refusal:?}"
    );
    assert!(
        refusal
            .message()
            .contains("disk holding the data directory is full"),
        "{refusal:?}"
    );
    // Later writes get the same answer, and the process is still up, serving reads.
    let again = ingest.ingest(seed_variant(MAX_INGESTS)).await.unwrap_err();
    assert_eq!(again.code(), refusal.code());
    let mut articles = ArticleServiceClient::new(channel);
    articles
        .get_article(pb::GetArticleRequest {
            id: acknowledged[0].id.clone(),
            ..Default::default()
        })
        .await
        .expect("reads go on");
    assert!(server.child.try_wait().unwrap().is_none(), "still running");
    server.terminate();
    server.wait_exit(WAIT);

    // On a disk with room, a copy of the directory serves every acknowledged article.
    let roomy = tempfile::tempdir().unwrap();
    copy_dir(&data_dir, roomy.path());
    let server = ChildServer::start(roomy.path());
    let mut articles = ArticleServiceClient::new(server.channel().await);
    for ack in &acknowledged {
        let article = articles
            .get_article(pb::GetArticleRequest {
                id: ack.id.clone(),
                ..Default::default()
            })
            .await
            .expect("acknowledged article after the disk filled")
            .into_inner();
        assert_eq!(article.cursor, ack.cursor);
    }
    let mut ingest = IngestServiceClient::new(server.channel().await);
    ingest
        .ingest(seed_variant(MAX_INGESTS + 1))
        .await
        .expect("writes go on with room");
    eprintln!(
        "disk full: {} articles acknowledged before {:?}: {}",
        acknowledged.len(),
        refusal.code(),
        refusal.message()
    );
}
