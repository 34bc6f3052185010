//! Model serving: sessions created once, each on a dedicated thread, fed by one bounded
//! queue. A job goes straight to the idle worker that finished last, whose session's memory
//! is still in cache; only when every worker is busy does it wait in the queue. (A plain
//! shared channel hands each job to the worker idle longest, which alternates the sessions
//! at concurrency 1; the gain measured here is a few percent, within this machine's drift:
//! BENCHMARKS.md.) A worker takes a job, adds what is already queued with the same input
//! shapes and
//! waits up to `max_wait` for more (up to `max_batch`), runs them as one batch and splits the outputs (Triton-style dynamic
//! batching). A full queue is overload: callers get `Overloaded` at once, never an
//! unbounded wait.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};
use ndarray::{concatenate, ArrayD, ArrayViewD, Axis, Slice};
use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::onnx_runtime::OrtRuntime;

#[derive(Debug, Clone, Deserialize)]
pub struct EngineConfig {
    /// Sessions (and threads) per model.
    pub sessions: usize,
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
    pub max_batch: usize,
    /// When concurrent jobs share a session run (up to `max_batch`); otherwise each job runs
    /// alone. On this 2-core CPU a batch costs more per image than single runs, and a session
    /// busy with four images leaves the other requests' decode and encode waiting: at 256² and
    /// concurrency 8 the render path did a median 34 images/s with batches of up to 4 and 45
    /// without (BENCHMARKS.md). On a GPU batching is where the throughput comes from.
    pub dynamic_batching: DevicePolicy,
    pub max_wait_ms: u64,
    /// Jobs waiting beyond the ones running; more is overload (429).
    pub queue_capacity: usize,
    /// ONNX Runtime's memory-pattern planning; ort advises turning it off when input shapes
    /// vary (dynamic batches, photo aspect ratios).
    pub memory_pattern: bool,
    /// When to pad every batch up to `max_batch` rows: a session then always sees
    /// `max_batch` rows.
    pub pad_batches: DevicePolicy,
    /// When to run the generator on a square frame (the photo reflect-padded to its longer
    /// side, the output cropped back), so every aspect ratio shares one input shape.
    pub square_frames: DevicePolicy,
}

/// When a serving choice that pays on a GPU applies: batching, and holding a session's input
/// shape fixed. On CUDA a session that sees a new input shape re-plans its kernels: measured
/// on an H200, batch sizes 1–4 in turn ran at 50–79 images/s against 1,700+ at a fixed batch
/// 8 (BENCHMARKS.md). A GPU is launch-bound at these sizes, so padding costs little there; on
/// a CPU every padded pixel costs its full share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DevicePolicy {
    Never,
    Always,
    /// Only when the CUDA execution provider runs the session.
    Gpu,
}

impl DevicePolicy {
    pub fn applies(self, provider: &str) -> bool {
        match self {
            Self::Never => false,
            Self::Always => true,
            Self::Gpu => provider == "cuda",
        }
    }
}

#[derive(Debug, thiserror::Error, Clone)]
pub enum EngineError {
    #[error("the model queue is full")]
    Overloaded,
    #[error("loading model {model}: {message}")]
    Load { model: String, message: String },
    #[error("running model {model}: {message}")]
    Run { model: String, message: String },
    #[error("model {0} was shut down")]
    Closed(String),
}

/// CPU work (image resizing, tensor conversion, Gram matrices) on the blocking pool, its
/// failure an engine error like the model run it prepares or follows.
pub async fn off_worker<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(work).await.map_err(|err| EngineError::Run {
        model: "style features".into(),
        message: err.to_string(),
    })
}

type Outputs = Result<Vec<ArrayD<f32>>, EngineError>;

/// A job's outputs and where its time went: waiting for a worker (and for the rest of its
/// batch), then the session run it shared with `batch - 1` other jobs.
#[derive(Debug)]
pub struct Ran {
    pub outputs: Vec<ArrayD<f32>>,
    pub queued: Duration,
    pub run: Duration,
    pub batch: usize,
}

struct Job {
    inputs: Vec<ArrayD<f32>>,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Ran, EngineError>>,
}

pub struct Engine {
    pub name: String,
    pub version: String,
    /// The execution provider that actually runs (`cpu`, or `cuda` when it registered).
    pub provider: &'static str,
    pub input_names: Vec<String>,
    pub output_names: Vec<String>,
    queue: Option<Sender<Job>>,
    idle: Arc<IdleWorkers>,
    /// Session runs per worker, in worker order.
    runs: Arc<[AtomicU64]>,
    workers: Vec<JoinHandle<()>>,
}

/// Workers waiting for a job, each by a one-job channel; the last to finish is on top. The
/// same lock covers a worker's last look at the queue before it joins the stack and a job's
/// choice between the stack and the queue, so no job waits in the queue beside an idle worker.
#[derive(Default)]
struct IdleWorkers {
    state: Mutex<IdleState>,
}

#[derive(Default)]
struct IdleState {
    waiting: Vec<Sender<Job>>,
    closed: bool,
}

impl IdleWorkers {
    fn lock(&self) -> MutexGuard<'_, IdleState> {
        // The state is a stack of senders and a flag: a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Engine {
    pub fn load(
        runtime: &OrtRuntime,
        name: &str,
        version: String,
        path: &Path,
        config: &EngineConfig,
    ) -> Result<Self, EngineError> {
        let load_error = |message: String| EngineError::Load {
            model: name.to_string(),
            message,
        };
        let (sender, receiver) = bounded::<Job>(config.queue_capacity.max(1));
        let idle = Arc::new(IdleWorkers::default());
        let mut sessions = Vec::new();
        let mut provider = "cpu";
        for _ in 0..config.sessions.max(1) {
            let (session, used) = build_session(runtime, path, config).map_err(load_error)?;
            provider = used;
            sessions.push(session);
        }
        let runs: Arc<[AtomicU64]> = sessions.iter().map(|_| AtomicU64::new(0)).collect();
        let input_names = sessions[0].inputs().iter().map(|i| i.name().to_string()).collect();
        let output_names: Vec<String> = sessions[0].outputs().iter().map(|o| o.name().to_string()).collect();
        let workers = sessions
            .into_iter()
            .enumerate()
            .map(|(n, session)| {
                let worker = Worker {
                    model: name.to_string(),
                    session,
                    receiver: receiver.clone(),
                    idle: idle.clone(),
                    runs: runs.clone(),
                    index: n,
                    standby: None,
                    output_names: output_names.clone(),
                    max_batch: if config.dynamic_batching.applies(provider) {
                        config.max_batch.max(1)
                    } else {
                        1
                    },
                    pad: config.pad_batches.applies(provider),
                    max_wait: Duration::from_millis(config.max_wait_ms),
                };
                std::thread::Builder::new()
                    .name(format!("onnx-{name}-{n}"))
                    .spawn(move || worker.run())
                    .map_err(|err| load_error(err.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        tracing::info!(model = name, %version, provider, sessions = workers.len(), "model loaded");
        Ok(Self {
            name: name.to_string(),
            version,
            provider,
            input_names,
            output_names,
            queue: Some(sender),
            idle,
            runs,
            workers,
        })
    }

    /// Session runs so far, per worker: how the load spreads over the sessions.
    pub fn runs_per_session(&self) -> Vec<u64> {
        self.runs.iter().map(|runs| runs.load(Ordering::Relaxed)).collect()
    }

    /// Runs one request (inputs in the model's input order, each with a leading batch axis).
    pub async fn run(&self, inputs: Vec<ArrayD<f32>>) -> Outputs {
        self.run_timed(inputs).await.map(|ran| ran.outputs)
    }

    /// `run`, with the job's queue wait and session run time.
    pub async fn run_timed(&self, inputs: Vec<ArrayD<f32>>) -> Result<Ran, EngineError> {
        let queue = self
            .queue
            .as_ref()
            .ok_or_else(|| EngineError::Closed(self.name.clone()))?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            inputs,
            enqueued: Instant::now(),
            reply,
        };
        self.hand_over(queue, job)?;
        answer.await.map_err(|_| EngineError::Closed(self.name.clone()))?
    }

    /// To the idle worker that finished last, else into the queue; a full queue is overload.
    fn hand_over(&self, queue: &Sender<Job>, job: Job) -> Result<(), EngineError> {
        let mut idle = self.idle.lock();
        match idle.waiting.pop() {
            // The worker blocks on its one-job channel until this arrives, or has gone if the
            // engine is closing.
            Some(worker) => worker.send(job).map_err(|_| EngineError::Closed(self.name.clone())),
            None => match queue.try_send(job) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => {
                    metrics::counter!("stylecast_model_overload_total", "model" => self.name.clone()).increment(1);
                    Err(EngineError::Overloaded)
                }
                Err(TrySendError::Disconnected(_)) => Err(EngineError::Closed(self.name.clone())),
            },
        }
    }
}

impl Drop for Engine {
    /// Closing the queue lets each worker finish its batch and exit, and dropping the idle
    /// workers' channels wakes them to exit; then join them.
    fn drop(&mut self) {
        self.queue.take();
        {
            let mut idle = self.idle.lock();
            idle.closed = true;
            idle.waiting.clear();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// A session as the engine makes them: the best execution provider, the config's threads and
/// memory planning.
pub fn build_session(
    runtime: &OrtRuntime,
    path: &Path,
    config: &EngineConfig,
) -> Result<(Session, &'static str), String> {
    let builder = Session::builder(&runtime.environment)
        .map_err(|e| e.to_string())?
        .with_intra_threads(config.intra_threads.max(1))
        .map_err(|e| e.to_string())?
        .with_memory_pattern(config.memory_pattern)
        .map_err(|e| e.to_string())?;
    let (mut builder, provider) = with_best_provider(builder);
    let session = builder.commit_from_file(path).map_err(|e| e.to_string())?;
    Ok((session, provider))
}

#[cfg(feature = "cuda")]
fn with_best_provider(
    builder: ort::session::builder::SessionBuilder,
) -> (ort::session::builder::SessionBuilder, &'static str) {
    // Heuristic, not exhaustive, cuDNN algorithm search: every new input shape (each photo
    // aspect ratio, each dynamic batch size) would otherwise be benchmarked on first sight,
    // costing hundreds of milliseconds (measured on an H200: BENCHMARKS.md).
    let cuda = ort::ep::CUDA::default().with_conv_algorithm_search(ort::ep::cuda::ConvAlgorithmSearch::Heuristic);
    match builder.with_execution_providers([cuda.build().error_on_failure()]) {
        Ok(builder) => (builder, "cuda"),
        Err(err) => {
            tracing::warn!(error = %err, "CUDA execution provider unavailable; falling back to CPU");
            (err.recover(), "cpu")
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn with_best_provider(
    builder: ort::session::builder::SessionBuilder,
) -> (ort::session::builder::SessionBuilder, &'static str) {
    (builder, "cpu")
}

struct Worker {
    model: String,
    session: Session,
    receiver: Receiver<Job>,
    idle: Arc<IdleWorkers>,
    runs: Arc<[AtomicU64]>,
    index: usize,
    /// This worker's place on the idle stack, taken before its last replies went out.
    standby: Option<Receiver<Job>>,
    output_names: Vec<String>,
    max_batch: usize,
    /// Pad every run to `max_batch` rows (the rows past the jobs' are dropped).
    pad: bool,
    max_wait: Duration,
}

impl Worker {
    fn run(mut self) {
        let mut held: Option<Job> = None;
        loop {
            let first = match held.take() {
                Some(job) => job,
                None => match self.next_job() {
                    Some(job) => job,
                    None => return,
                },
            };
            let mut batch = vec![first];
            let deadline = Instant::now() + self.max_wait;
            while batch.len() < self.max_batch {
                match self.receiver.recv_deadline(deadline) {
                    Ok(job) if same_shapes(&job, &batch[0]) => batch.push(job),
                    Ok(job) => {
                        held = Some(job);
                        break;
                    }
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            metrics::histogram!("stylecast_model_batch_size", "model" => self.model.clone()).record(batch.len() as f64);
            self.run_batch(batch, held.is_some());
        }
    }

    /// The job handed to this worker on the idle stack, or the oldest queued one, or, with
    /// none queued, a place on the idle stack and the job handed there. `None` once the engine
    /// is closed and the queue drained.
    fn next_job(&mut self) -> Option<Job> {
        let handed = match self.standby.take() {
            Some(handed) => handed,
            None => {
                let mut idle = self.idle.lock();
                match self.receiver.try_recv() {
                    Ok(job) => return Some(job),
                    Err(TryRecvError::Disconnected) => return None,
                    Err(TryRecvError::Empty) if idle.closed => return None,
                    Err(TryRecvError::Empty) => join_idle(&mut idle),
                }
            }
        };
        handed.recv().ok()
    }

    /// Joins the idle stack before the replies go out, when nothing is queued, so that a
    /// caller's next request finds this worker on top rather than the one idle longest.
    fn stand_by(&mut self) {
        let mut idle = self.idle.lock();
        if !idle.closed && self.receiver.is_empty() {
            self.standby = Some(join_idle(&mut idle));
        }
    }

    /// Runs one batch and replies; `held_next` says the worker already has its next job.
    fn run_batch(&mut self, batch: Vec<Job>, held_next: bool) {
        let rows: Vec<usize> = batch
            .iter()
            .map(|job| job.inputs.first().map_or(0, |a| a.shape()[0]))
            .collect();
        let started = Instant::now();
        let outputs = self.infer(&batch);
        let run = started.elapsed();
        if let Some(runs) = self.runs.get(self.index) {
            runs.fetch_add(1, Ordering::Relaxed);
        }
        if !held_next {
            self.stand_by();
        }
        metrics::histogram!("stylecast_model_run_seconds", "model" => self.model.clone()).record(run.as_secs_f64());
        let size = batch.len();
        match outputs {
            Ok(outputs) => {
                let mut offset = 0;
                for (job, n) in batch.into_iter().zip(rows) {
                    let mine = outputs
                        .iter()
                        .map(|o| o.slice_axis(Axis(0), Slice::from(offset..offset + n)).to_owned())
                        .collect();
                    offset += n;
                    let _ = job.reply.send(Ok(Ran {
                        outputs: mine,
                        queued: started.saturating_duration_since(job.enqueued),
                        run,
                        batch: size,
                    }));
                }
            }
            Err(err) => {
                for job in batch {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
    }

    fn infer(&mut self, batch: &[Job]) -> Result<Vec<ArrayD<f32>>, EngineError> {
        let run_error = |message: String| EngineError::Run {
            model: self.model.clone(),
            message,
        };
        let inputs_per_job = batch[0].inputs.len();
        let rows: usize = batch
            .iter()
            .map(|job| job.inputs.first().map_or(0, |a| a.shape()[0]))
            .sum();
        let padding = if self.pad {
            self.max_batch.saturating_sub(rows)
        } else {
            0
        };
        let mut joined = Vec::with_capacity(inputs_per_job);
        for index in 0..inputs_per_job {
            let mut views: Vec<ArrayViewD<'_, f32>> = batch.iter().map(|job| job.inputs[index].view()).collect();
            // Copies of the first row fill the batch; run_batch hands out only the jobs' rows.
            let first_row = batch[0].inputs[index].slice_axis(Axis(0), Slice::from(0..1));
            views.extend(std::iter::repeat_n(first_row, padding));
            joined.push(concatenate(Axis(0), &views).map_err(|e| run_error(e.to_string()))?);
        }
        run_session(&mut self.session, &self.output_names, joined).map_err(run_error)
    }
}

/// One session run: inputs in the model's input order, outputs in `output_names` order.
/// The engine's workers and the benchmark's bare-session figure both go through here.
pub fn run_session(
    session: &mut Session,
    output_names: &[String],
    inputs: Vec<ArrayD<f32>>,
) -> Result<Vec<ArrayD<f32>>, String> {
    let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.into_iter().enumerate() {
        let name = session.inputs()[index].name().to_string();
        let tensor = Tensor::from_array(input).map_err(|e| e.to_string())?;
        values.push((Cow::Owned(name), SessionInputValue::from(tensor)));
    }
    let outputs = session.run(values).map_err(|e| e.to_string())?;
    output_names
        .iter()
        .map(|name| {
            outputs[name.as_str()]
                .try_extract_array::<f32>()
                .map(|view| view.to_owned())
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// A place on the idle stack: the one-job channel a job will be handed to this worker by.
fn join_idle(idle: &mut IdleState) -> Receiver<Job> {
    let (sender, handed) = bounded::<Job>(1);
    idle.waiting.push(sender);
    handed
}

fn same_shapes(a: &Job, b: &Job) -> bool {
    a.inputs.len() == b.inputs.len()
        && a.inputs
            .iter()
            .zip(&b.inputs)
            .all(|(x, y)| x.shape()[1..] == y.shape()[1..])
}
