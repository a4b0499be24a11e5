//! The in-cluster agent's async side (the reporter, the heartbeat, the baseline-reset check)
//! reaches the node's state only through [`StoreAccess`], which never blocks a runtime worker.
//!
//! Why: the chart gives the agent a CPU limit of 1, so the async runtime may have a single
//! worker, and a scan holds the store's only writer for the whole of a workspace scan (minutes
//! on a large node). A redb write started on a worker would wait that long, and with it
//! `/healthz` (the liveness probe), the configuration watch and the heartbeat. So:
//! - reads run on the blocking pool (`spawn_blocking`); redb readers never wait for the writer,
//!   so they answer at once whatever a scan is doing;
//! - writes (settling queued records, recording and clearing baseline resets) go through a
//!   bounded channel to one thread of their own, which applies them in batches whenever the
//!   writer is free. Until a settlement is applied, reads of the queue leave out the records it
//!   names, so the reporter goes on at once. A crash before it is applied sends those records
//!   again, which their deterministic names make harmless (AlreadyExists counts as success).
//!
//! It never decides what to write: the reporter decides what is settled, the heartbeat and the
//! baseline-reset check what is recorded.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{mpsc, oneshot};

use crate::{
    Error, Result,
    config::WorkspaceKey,
    lock,
    records::{BaselineReset, DeadLetter},
    store::{BaselineStore, Pending, Settlement},
};

/// Writes waiting for the writer thread; past it, the reporter awaits (asynchronously).
const PENDING_WRITES: usize = 1024;
/// Settlements applied in one update, at most.
const BATCH: usize = 256;

/// A write for the writer thread.
#[derive(Debug)]
enum Write {
    Settle(Settlement),
    Reset {
        workspace: WorkspaceKey,
        reset: Option<BaselineReset>,
        done: Option<oneshot::Sender<Result<()>>>,
    },
    /// Answered once every write sent before it is applied.
    Flush(oneshot::Sender<()>),
}

/// Records whose settlement is sent but not yet applied: sequence → lane.
type Settling = Arc<Mutex<BTreeMap<u64, WorkspaceKey>>>;

/// The async side's access to the store (see the module's documentation).
#[derive(Debug, Clone)]
pub struct StoreAccess {
    store: Arc<BaselineStore>,
    writes: mpsc::Sender<Write>,
    settling: Settling,
    writer: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl StoreAccess {
    /// Starts the writer thread; it ends once every clone of the access is dropped, after
    /// applying what was sent.
    pub fn start(store: Arc<BaselineStore>) -> Result<Self> {
        let (writes, received) = mpsc::channel(PENDING_WRITES);
        let settling = Settling::default();
        let (thread_store, thread_settling) = (store.clone(), settling.clone());
        let writer = std::thread::Builder::new()
            .name("kubefim-state".into())
            .spawn(move || write_loop(&thread_store, &thread_settling, received))
            .map_err(|_| Error::Internal("cannot start the store's writer thread"))?;
        Ok(Self {
            store,
            writes,
            settling,
            writer: Arc::new(Mutex::new(Some(writer))),
        })
    }

    /// Ends the writer thread once it applied what was sent, and lets go of the store; from a
    /// blocking context, on the last access (the others would keep the thread alive).
    pub fn close(self) {
        let writer = lock(&self.writer).take();
        let last = Arc::strong_count(&self.writer) == 1;
        drop(self);
        if let Some(writer) = writer.filter(|_| last) {
            let _ = writer.join();
        }
    }

    pub fn store(&self) -> &BaselineStore {
        &self.store
    }

    /// Runs `read` on the blocking pool.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&BaselineStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || read(&store))
            .await
            .map_err(|_| Error::Internal("a read of the store panicked"))?
    }

    /// The workspaces with records still to settle, in order.
    pub async fn lanes(&self) -> Result<Vec<WorkspaceKey>> {
        let settling = self.settling.clone();
        self.read(move |store| {
            let lanes = store.queue().lanes()?;
            let settling = lock(&settling);
            // A lane whose every record is being settled has nothing left to send.
            let mut left = Vec::new();
            for lane in lanes {
                let being_settled = settling.values().filter(|l| **l == lane).count() as u64;
                if store.queue().depth_of(&lane)? > being_settled {
                    left.push(lane);
                }
            }
            Ok(left)
        })
        .await
    }

    /// Up to `limit` oldest records of `lane` not being settled.
    pub async fn pending(&self, lane: &WorkspaceKey, limit: usize) -> Result<Vec<Pending>> {
        let (settling, lane) = (self.settling.clone(), lane.clone());
        self.read(move |store| {
            let settling = lock(&settling);
            store
                .queue()
                .pending(&lane, limit, &|seq| settling.contains_key(&seq))
        })
        .await
    }

    /// Records queued and not settled, in every lane (`None`) or in one.
    pub async fn depth(&self, lane: Option<&WorkspaceKey>) -> Result<u64> {
        let (settling, lane) = (self.settling.clone(), lane.cloned());
        self.read(move |store| {
            // Held across the read: the writer takes it before it commits, so the stored depth
            // and the records being settled are seen at one moment.
            let settling = lock(&settling);
            Ok(match &lane {
                None => store.queue().depth()?.saturating_sub(settling.len() as u64),
                Some(lane) => {
                    let being_settled = settling.values().filter(|l| *l == lane).count() as u64;
                    store.queue().depth_of(lane)?.saturating_sub(being_settled)
                }
            })
        })
        .await
    }

    /// The record `seq` of `lane` was acknowledged: it leaves the queue.
    pub async fn acknowledge(&self, lane: &WorkspaceKey, seq: u64) {
        let settlement = Settlement::Acknowledged {
            lane: lane.clone(),
            seq,
        };
        self.settle(lane, seq, settlement).await;
    }

    /// The record `seq` of `lane` was refused for good: it moves to the dead letters.
    pub async fn refuse(&self, lane: &WorkspaceKey, seq: u64, letter: DeadLetter) {
        let settlement = Settlement::Refused {
            lane: lane.clone(),
            seq,
            letter: Box::new(letter),
        };
        self.settle(lane, seq, settlement).await;
    }

    async fn settle(&self, lane: &WorkspaceKey, seq: u64, settlement: Settlement) {
        lock(&self.settling).insert(seq, lane.clone());
        if self.writes.send(Write::Settle(settlement)).await.is_err() {
            // The writer is gone (shutting down): the record stays queued and is sent again
            // by the next start, which AlreadyExists makes harmless.
            lock(&self.settling).remove(&seq);
        }
    }

    /// Records a reset found for `workspace` (Some) or settles it once accepted (None), and
    /// waits until it is written.
    pub async fn set_reset(&self, workspace: &WorkspaceKey, reset: Option<BaselineReset>) -> Result<()> {
        let (done, written) = oneshot::channel();
        let write = Write::Reset {
            workspace: workspace.clone(),
            reset,
            done: Some(done),
        };
        self.writes
            .send(write)
            .await
            .map_err(|_| Error::Internal("the store's writer thread has stopped"))?;
        written
            .await
            .map_err(|_| Error::Internal("the store's writer thread has stopped"))?
    }

    /// Sends the settling of an accepted reset without waiting for it (it may wait for a scan);
    /// the writer logs a failure.
    pub fn clear_reset_later(&self, workspace: &WorkspaceKey) {
        let write = Write::Reset {
            workspace: workspace.clone(),
            reset: None,
            done: None,
        };
        if self.writes.try_send(write).is_err() {
            tracing::warn!(workspace = %workspace, "the store's writer is busy; the accepted baseline reset is cleared at the next heartbeat");
        }
    }

    /// Waits until every write sent so far is applied.
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.writes.send(Write::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }
}

/// The writer thread: applies writes in batches until every sender is gone.
fn write_loop(store: &BaselineStore, settling: &Settling, mut received: mpsc::Receiver<Write>) {
    while let Some(first) = received.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH
            && let Ok(next) = received.try_recv()
        {
            batch.push(next);
        }
        let mut settlements = Vec::new();
        let mut flushed = Vec::new();
        for write in batch {
            match write {
                Write::Settle(settlement) => settlements.push(settlement),
                Write::Reset {
                    workspace,
                    reset,
                    done,
                } => {
                    // Settlements sent before a reset are applied before it.
                    apply(store, settling, &mut settlements);
                    let written = store.set_reset(&workspace, reset.as_ref());
                    if let Err(e) = &written {
                        tracing::error!(workspace = %workspace, error = %kubefim_telemetry::error_chain(e), "cannot record a baseline reset");
                    }
                    if let Some(done) = done {
                        let _ = done.send(written);
                    }
                }
                Write::Flush(done) => flushed.push(done),
            }
        }
        apply(store, settling, &mut settlements);
        for done in flushed {
            let _ = done.send(());
        }
    }
}

/// Applies `settlements` in one update; whatever happens, they are no longer being settled (a
/// record whose settlement failed is still queued, and is sent again).
fn apply(store: &BaselineStore, settling: &Settling, settlements: &mut Vec<Settlement>) {
    if settlements.is_empty() {
        return;
    }
    let seqs: Vec<u64> = settlements
        .iter()
        .map(|s| match s {
            Settlement::Acknowledged { seq, .. } | Settlement::Refused { seq, .. } => *seq,
        })
        .collect();
    let result = store.queue().settle(settlements, || lock(settling));
    match result {
        Ok(mut settling) => {
            for seq in &seqs {
                settling.remove(seq);
            }
        }
        Err(e) => {
            tracing::error!(records = seqs.len(), error = %kubefim_telemetry::error_chain(&e), "cannot settle reported changes; they stay queued and are sent again");
            let mut settling = lock(settling);
            for seq in &seqs {
                settling.remove(seq);
            }
        }
    }
    settlements.clear();
}
