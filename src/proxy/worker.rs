//! Worker threads: each runs its own monoio runtime (io_uring, or the legacy
//! driver where io_uring is unavailable), binds its own SO_REUSEPORT listeners
//! and owns the sessions it accepts. Nothing on the data path is shared.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::net::TcpListener;
use tracing::{error, info, warn};

use crate::wire::error_response::PgError;

use super::client_login::LoginContext;
use super::shutdown;
use super::tls;
use crate::audit::writer::{lock_dir, open_stream, AuditStream, OpenedStream, StreamSettings};
use crate::config::Config;

/// Everything a worker's sessions read: the configuration in force (a
/// reload replaces it) and what lives as long as the worker.
pub struct WorkerContext {
    /// What the configuration in force makes.
    live: std::cell::RefCell<Rc<Live>>,
    /// The client sinks of this worker's sessions (for the shutdown notice).
    pub sinks: std::cell::RefCell<
        Vec<
            std::rc::Weak<
                futures_util::lock::Mutex<monoio::io::OwnedWriteHalf<super::stream::Stream>>,
            >,
        >,
    >,
    /// This worker's catalog snapshots by database.
    pub catalogs: super::catalog::CatalogCache,
    /// This worker's classifications by statement fingerprint.
    pub cache: std::cell::RefCell<crate::sql::cache::ClassificationCache>,
    /// This worker's audit stream, when the audit log is on.
    pub audit: Option<Rc<AuditStream>>,
    /// The audit settings pgward started with (a reload keeps them).
    pub audit_settings: Option<crate::config::AuditConfig>,
    /// The approval book, when approvals are on.
    pub approvals: Option<Arc<crate::approval::Book>>,
    /// This worker's metrics (folded for scrapes every second).
    pub metrics: Rc<crate::admin::metrics::WorkerMetrics>,
}

/// What one generation of the configuration makes, for a worker's sessions.
pub struct Live {
    /// Which reload made it (0: the configuration pgward started with).
    pub generation: u64,
    /// The configuration.
    pub config: Arc<Config>,
    /// Login settings and the user table.
    pub login: LoginContext,
    /// Upstream TLS configuration per database (absent for sslmode=disable).
    pub upstream_tls: HashMap<String, Arc<rustls::ClientConfig>>,
    /// The configured masks.
    pub masks: Rc<crate::policy::masks::Masks>,
}

impl WorkerContext {
    /// The configuration in force, rebuilt first when a reload published a
    /// newer one.
    pub fn live(&self) -> Rc<Live> {
        if self.live.borrow().generation != super::reload::generation() {
            if let Some((generation, blueprint)) = super::reload::latest() {
                *self.live.borrow_mut() = Rc::new(blueprint.live(generation));
            }
        }
        self.live.borrow().clone()
    }
}

/// What all workers are built from; validated before any thread starts.
#[derive(Clone)]
pub struct Blueprint {
    config: Arc<Config>,
    server_tls: Option<Arc<rustls::ServerConfig>>,
    end_point: Option<Vec<u8>>,
    upstream_tls: HashMap<String, Arc<rustls::ClientConfig>>,
    mock_key: [u8; 32],
    approvals: Option<Arc<crate::approval::Book>>,
}

impl Blueprint {
    /// The blueprint of a reloaded configuration: certificates and keys read
    /// again; the salts of unknown users stay as they were (a client must
    /// not tell a reload from a user's creation).
    pub fn reloaded(config: Config, previous: &Blueprint) -> Result<Blueprint, String> {
        Ok(Blueprint {
            mock_key: previous.mock_key,
            approvals: previous.approvals.clone(),
            ..Blueprint::new(config)?
        })
    }

    /// Opens the approval book where the configuration keeps it (only at
    /// start: a reload keeps the book it has).
    pub fn open_approvals(&mut self) -> Result<(), String> {
        let Some(dir) = self.config.approval_dir() else {
            return Ok(());
        };
        let store = crate::approval::store::Store::open(&dir)?;
        let book = crate::approval::Book::open(store, crate::audit::time::now_micros())?;
        self.approvals = Some(Arc::new(book));
        Ok(())
    }

    /// The approval book, when open.
    pub fn approvals(&self) -> Option<Arc<crate::approval::Book>> {
        self.approvals.clone()
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Keeps the running values of the settings only a restart can change
    /// (the listen addresses and the number of workers), and names those
    /// that differed.
    pub fn keep_restart_only(&mut self, running: &Blueprint) -> Vec<&'static str> {
        let (now, then) = (&running.config.server, &self.config.server);
        let mut kept = Vec::new();
        if now.listen != then.listen {
            kept.push("server.listen");
        }
        if now.workers != then.workers {
            kept.push("server.workers");
        }
        if running.config.audit != self.config.audit {
            kept.push("audit");
        }
        let admin_at = |c: &Config| c.admin.as_ref().map(|a| (a.listen, a.state_dir.clone()));
        if admin_at(&running.config) != admin_at(&self.config) {
            kept.push("admin.listen, admin.state_dir");
        }
        if !kept.is_empty() {
            let config = Arc::make_mut(&mut self.config);
            config.server.listen = now.listen.clone();
            config.server.workers = now.workers;
            config.audit = running.config.audit.clone();
            if let (Some(now), Some(then)) = (&running.config.admin, &mut config.admin) {
                then.listen = now.listen;
                then.state_dir.clone_from(&now.state_dir);
            }
        }
        kept
    }

    /// Loads certificates and keys; errors name the file.
    pub fn new(config: Config) -> Result<Blueprint, String> {
        let (server_tls, end_point) = match &config.server.tls {
            Some(files) => {
                let (c, e) = tls::server_config(files)?;
                (Some(c), Some(e))
            }
            None => (None, None),
        };
        let mut upstream_tls = HashMap::new();
        for (name, db) in &config.databases {
            if let Some(c) = tls::client_config(db.sslmode, db.ca_file.as_deref())
                .map_err(|e| format!("databases.{name}: {e}"))?
            {
                upstream_tls.insert(name.clone(), c);
            }
        }
        Ok(Blueprint {
            config: Arc::new(config),
            server_tls,
            end_point,
            upstream_tls,
            mock_key: crate::auth::scram::random_bytes::<32>(),
            approvals: None,
        })
    }

    fn context(&self) -> WorkerContext {
        WorkerContext {
            live: std::cell::RefCell::new(Rc::new(self.live(super::reload::generation()))),
            catalogs: super::catalog::CatalogCache::default(),
            sinks: std::cell::RefCell::new(Vec::new()),
            cache: std::cell::RefCell::new(crate::sql::cache::ClassificationCache::new(10_000)),
            audit: None,
            audit_settings: self.config.audit.clone(),
            approvals: self.approvals.clone(),
            metrics: Rc::new(crate::admin::metrics::WorkerMetrics::new()),
        }
    }

    fn live(&self, generation: u64) -> Live {
        let users = self
            .config
            .users
            .iter()
            .map(|(k, v)| (k.clone(), Arc::new(v.clone())))
            .collect();
        Live {
            generation,
            config: self.config.clone(),
            login: LoginContext {
                config: self.config.clone(),
                tls: self
                    .server_tls
                    .clone()
                    .map(monoio_rustls::TlsAcceptor::from),
                users,
                mock_key: self.mock_key,
                end_point: self.end_point.clone(),
                chunk: self.config.server.buffer_size,
            },
            upstream_tls: self.upstream_tls.clone(),
            masks: Rc::new(self.config.masks.clone()),
        }
    }
}

/// Binds a listening socket that other workers may bind too.
fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Binds every listener for one worker, before its thread starts, so a port
/// in use is reported at start-up.
pub fn bind_all(config: &Config) -> Result<Vec<std::net::TcpListener>, String> {
    config
        .server
        .listen
        .iter()
        .map(|a| bind_reuseport(*a).map_err(|e| format!("cannot listen on {a}: {e}")))
        .collect()
}

/// Claims each listen address for this process: SO_REUSEPORT lets the
/// workers share a port, but it would let a second pgward (same user) share
/// it too, and take half the connections. The claim is an abstract Unix
/// socket named after the address, held until the process exits; a second
/// claim fails with "address already in use".
fn claim_listen_addresses(config: &Config) -> Result<(), String> {
    use std::os::linux::net::SocketAddrExt;
    for a in &config.server.listen {
        let name = format!("pgward-listen-{a}");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .map_err(|e| format!("cannot listen on {a}: {e}"))?;
        match std::os::unix::net::UnixListener::bind_addr(&addr) {
            // Held for the life of the process.
            Ok(claim) => std::mem::forget(claim),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(format!(
                    "cannot listen on {a}: address already in use (another pgward listens there)"
                ))
            }
            Err(e) => return Err(format!("cannot listen on {a}: {e}")),
        }
    }
    Ok(())
}

/// Starts `workers` threads and returns their handles.
/// Workers started, and the audit stream kept for the admin thread (the
/// last stream, when both the audit log and `[admin]` are on).
pub struct Started {
    /// The worker threads.
    pub handles: Vec<std::thread::JoinHandle<()>>,
    /// The admin thread's audit stream.
    pub admin_audit: Option<OpenedStream>,
}

pub fn start(blueprint: Blueprint) -> Result<Started, String> {
    claim_listen_addresses(&blueprint.config)?;
    let workers = blueprint.config.server.workers;
    let mut streams = open_audit_streams(&blueprint.config)?;
    let admin_audit = match blueprint.config.admin {
        Some(_) if streams.len() > workers => streams.pop().flatten(),
        _ => None,
    };
    let mut handles = Vec::new();
    for n in 0..workers {
        let listeners = bind_all(&blueprint.config)?;
        let bp = blueprint.clone();
        let stream = streams.get_mut(n).and_then(Option::take);
        let h = std::thread::Builder::new()
            .name(format!("pgward-worker-{n}"))
            .spawn(move || run_worker(n, bp, listeners, stream))
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        handles.push(h);
    }
    Ok(Started {
        handles,
        admin_audit,
    })
}

/// Locks the audit directory for this process and finds where each
/// worker's stream continues; nothing when the audit log is off.
fn open_audit_streams(config: &Config) -> Result<Vec<Option<OpenedStream>>, String> {
    let Some(audit) = &config.audit else {
        return Ok(Vec::new());
    };
    let lock = lock_dir(&audit.dir).map_err(|e| format!("audit.dir: {e}"))?;
    // Held until the process exits.
    std::mem::forget(lock);
    // One stream per worker, and one for the admin thread's records.
    let streams = config.server.workers + usize::from(config.admin.is_some());
    (0..streams)
        .map(|n| {
            open_stream(StreamSettings {
                dir: audit.dir.clone(),
                stream: n as u32,
                streams: streams as u32,
                segment_size: audit.segment_size,
                policy: config.version.clone(),
                durability: audit.durability,
                sync_interval: audit.sync_interval,
            })
            .map(Some)
            .map_err(|e| format!("audit.dir: {e}"))
        })
        .collect()
}

fn run_worker(
    n: usize,
    bp: Blueprint,
    listeners: Vec<std::net::TcpListener>,
    audit: Option<OpenedStream>,
) {
    let uring = monoio::utils::detect_uring();
    if !uring {
        warn!(
            worker = n,
            "io_uring is unavailable; using the legacy epoll driver"
        );
    }
    // Cooperative task running: completions are handled when the worker next
    // enters the kernel instead of interrupting it, which measurably cuts
    // proxy CPU per transaction. Older kernels refuse the flag: retry without.
    let rt = build_runtime(true).or_else(|_| build_runtime(false));
    let mut rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            error!(worker = n, error = %e, "cannot build the runtime");
            shutdown::fail();
            return;
        }
    };
    rt.block_on(async move {
        let mut ctx = bp.context();
        if let Some(opened) = audit {
            let (stream, writer) = AuditStream::new(opened);
            monoio::spawn(writer.run());
            ctx.audit = Some(stream);
        }
        let ctx = Rc::new(ctx);
        crate::admin::thread::register_worker_metrics(ctx.metrics.shared());
        monoio::spawn(fold_metrics(ctx.clone()));
        let mut tasks = Vec::new();
        for l in listeners {
            match TcpListener::from_std(l) {
                Ok(l) => tasks.push(monoio::spawn(accept_loop(n, l, ctx.clone()))),
                Err(e) => {
                    error!(worker = n, error = %e, "cannot adopt listener");
                    shutdown::fail();
                }
            }
        }
        info!(worker = n, io_uring = uring, "worker ready");
        shutdown::worker_ready();
        for t in tasks {
            t.await;
        }
        // Sessions run on as detached tasks; wait for them here until the
        // process-wide drain ends.
        while shutdown::active_sessions() > 0 && !shutdown::drain_expired() {
            monoio::time::sleep(Duration::from_millis(50)).await;
        }
        // The grace period is over: tell the clients still here why their
        // session ends, as PostgreSQL does on a fast shutdown.
        let goodbye = PgError::fatal(
            "57P01",
            "terminating connection due to administrator command",
        )
        .with_detail("pgward is shutting down")
        .to_frame()
        .freeze();
        let sinks: Vec<_> = ctx
            .sinks
            .borrow()
            .iter()
            .filter_map(std::rc::Weak::upgrade)
            .collect();
        for sink in sinks {
            let frame = goodbye.clone();
            let _ = monoio::time::timeout(Duration::from_millis(500), async move {
                let mut w = sink.lock().await;
                let _ = super::buffer::write_all(&mut *w, frame).await;
            })
            .await;
        }
        if let Some(stream) = &ctx.audit {
            // The sessions just told to go record their end; then the
            // stream writes what it holds and stops.
            for _ in 0..20 {
                if shutdown::active_sessions() == 0 {
                    break;
                }
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
            stream.close().await;
        }
    });
}

/// Every second, moves what the worker counted into the copy scrapes read
/// (with the decision cache's hits and misses since the last time).
async fn fold_metrics(ctx: Rc<WorkerContext>) {
    let (mut hits, mut misses) = (0, 0);
    loop {
        monoio::time::sleep(Duration::from_secs(1)).await;
        let (h, m) = {
            let c = ctx.cache.borrow();
            (c.hits, c.misses)
        };
        ctx.metrics
            .cache_counts(h.saturating_sub(hits), m.saturating_sub(misses));
        (hits, misses) = (h, m);
        ctx.metrics.fold();
    }
}

type Runtime = monoio::FusionRuntime<
    monoio::time::TimeDriver<monoio::IoUringDriver>,
    monoio::time::TimeDriver<monoio::LegacyDriver>,
>;

fn build_runtime(coop_taskrun: bool) -> std::io::Result<Runtime> {
    let mut urb = io_uring::IoUring::builder();
    if coop_taskrun {
        urb.setup_coop_taskrun().setup_taskrun_flag();
    }
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .with_entries(1024)
        .uring_builder(urb)
        .build()
}

async fn accept_loop(worker: usize, listener: TcpListener, ctx: Rc<WorkerContext>) {
    let mut next_id = worker as u64 * 1_000_000_000;
    loop {
        let accepted = monoio::select! {
            a = listener.accept() => a,
            _ = shutdown::draining() => return,
        };
        match accepted {
            Ok((tcp, peer)) => {
                next_id += 1;
                let ctx = ctx.clone();
                let guard = shutdown::SessionGuard::new();
                monoio::spawn(async move {
                    super::session::serve(tcp, peer, ctx, next_id).await;
                    drop(guard);
                });
            }
            Err(e) => {
                // Out of descriptors and similar: back off instead of spinning.
                warn!(worker, error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
