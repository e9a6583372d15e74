//! libsrt, SRT's reference implementation (the one OBS, ffmpeg and vMix speak), loaded
//! from the system at run time: Debian's ffmpeg already brings `libsrt1.5-gnutls`, so
//! building OnAir needs no C toolchain or headers, and a node without the library runs
//! without SRT. Only what the listener needs is bound: a listening socket that asks
//! [`Gate`] about each caller during the handshake, non-blocking accepts through
//! libsrt's epoll, and blocking reads with a timeout on accepted sockets.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use socket2::SockAddr;

/// The library names tried, newest ABI first (Debian's flavours, then a plain build).
const LIBRARY_NAMES: [&str; 4] = [
    "libsrt-gnutls.so.1.5",
    "libsrt-openssl.so.1.5",
    "libsrt.so.1.5",
    "libsrt.so",
];

// From srt.h (libsrt 1.5).
const SRTO_RCVSYN: c_int = 2;
const SRTO_RCVTIMEO: c_int = 14;
const SRTO_LATENCY: c_int = 23;
const SRTO_PASSPHRASE: c_int = 26;
const SRT_EPOLL_IN: c_int = 0x1;
const SRT_EPOLL_ERR: c_int = 0x8;
/// `MJ_AGAIN` errors: nothing to accept or read yet (`SRT_EASYNCRCV`, `SRT_ETIMEOUT`).
const SRT_EAGAIN: std::ops::Range<c_int> = 6000..7000;
/// The largest live-mode payload (`SRT_LIVE_MAX_PLSIZE`).
pub(crate) const MAX_PAYLOAD: usize = 1456;
/// Syslog levels, as libsrt uses them. Its warnings include one per receive timeout
/// (1.5.1), so only errors are asked for.
const LOG_CRIT: c_int = 2;
const LOG_ERR: c_int = 3;
/// `SRT_LOGF_DISABLE_TIME | _THREADNAME | _SEVERITY | _EOL`: tracing adds its own.
const LOG_FLAGS_BARE: c_int = 15;

type ListenHook = extern "C" fn(*mut c_void, c_int, c_int, *const c_void, *const c_char) -> c_int;
type LogHandler =
    extern "C" fn(*mut c_void, c_int, *const c_char, c_int, *const c_char, *const c_char);

/// The libsrt calls OnAir makes. Copied out of the library, which is kept loaded for the
/// process's life.
struct Api {
    create_socket: unsafe extern "C" fn() -> c_int,
    setsockflag: unsafe extern "C" fn(c_int, c_int, *const c_void, c_int) -> c_int,
    bind: unsafe extern "C" fn(c_int, *const c_void, c_int) -> c_int,
    getsockname: unsafe extern "C" fn(c_int, *mut c_void, *mut c_int) -> c_int,
    listen: unsafe extern "C" fn(c_int, c_int) -> c_int,
    listen_callback: unsafe extern "C" fn(c_int, Option<ListenHook>, *mut c_void) -> c_int,
    accept: unsafe extern "C" fn(c_int, *mut c_void, *mut c_int) -> c_int,
    recvmsg: unsafe extern "C" fn(c_int, *mut c_char, c_int) -> c_int,
    close: unsafe extern "C" fn(c_int) -> c_int,
    setrejectreason: unsafe extern "C" fn(c_int, c_int) -> c_int,
    getlasterror: unsafe extern "C" fn(*mut c_int) -> c_int,
    getlasterror_str: unsafe extern "C" fn() -> *const c_char,
    epoll_create: unsafe extern "C" fn() -> c_int,
    epoll_add_usock: unsafe extern "C" fn(c_int, c_int, *const c_int) -> c_int,
    epoll_uwait: unsafe extern "C" fn(c_int, *mut EpollEvent, c_int, i64) -> c_int,
    epoll_release: unsafe extern "C" fn(c_int) -> c_int,
    _library: libloading::Library,
}

/// `SRT_EPOLL_EVENT`.
#[repr(C)]
struct EpollEvent {
    socket: c_int,
    events: c_int,
}

/// Why an SRT call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SrtError {
    #[error(
        "libsrt is not installed (tried {LIBRARY_NAMES:?}: {0}); Debian: apt-get install libsrt1.5-gnutls"
    )]
    Missing(String),
    #[error("{call}: {message}")]
    Call {
        call: &'static str,
        code: c_int,
        message: String,
    },
}

impl SrtError {
    /// Nothing was ready: try again.
    fn is_again(&self) -> bool {
        matches!(self, Self::Call { code, .. } if SRT_EAGAIN.contains(code))
    }
}

/// The loaded library, started once.
fn api() -> Result<&'static Api, SrtError> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load)
        .as_ref()
        .map_err(|error| SrtError::Missing(error.clone()))
}

fn load() -> Result<Api, String> {
    let mut last_error = String::new();
    for name in LIBRARY_NAMES {
        // SAFETY: libsrt's initialisers only set up its own globals; every library tried
        // is a libsrt, whose 1.5 calls bind_api resolves by name.
        let bound = unsafe { libloading::Library::new(name) }
            .map_err(|e| e.to_string())
            .and_then(|library| unsafe { bind_api(library) });
        match bound {
            Ok(api) => return Ok(api),
            Err(error) => last_error = format!("{name}: {error}"),
        }
    }
    Err(last_error)
}

/// Resolves every call and starts libsrt. SAFETY: `library` is libsrt 1.5 (the
/// signatures are srt.h's).
unsafe fn bind_api(library: libloading::Library) -> Result<Api, String> {
    macro_rules! symbol {
        ($name:literal) => {
            *unsafe { library.get(concat!($name, "\0").as_bytes()) }.map_err(|e| e.to_string())?
        };
    }
    let startup: unsafe extern "C" fn() -> c_int = symbol!("srt_startup");
    let setloglevel: unsafe extern "C" fn(c_int) = symbol!("srt_setloglevel");
    let setlogflags: unsafe extern "C" fn(c_int) = symbol!("srt_setlogflags");
    let setloghandler: unsafe extern "C" fn(*mut c_void, Option<LogHandler>) =
        symbol!("srt_setloghandler");
    let api = Api {
        create_socket: symbol!("srt_create_socket"),
        setsockflag: symbol!("srt_setsockflag"),
        bind: symbol!("srt_bind"),
        getsockname: symbol!("srt_getsockname"),
        listen: symbol!("srt_listen"),
        listen_callback: symbol!("srt_listen_callback"),
        accept: symbol!("srt_accept"),
        recvmsg: symbol!("srt_recvmsg"),
        close: symbol!("srt_close"),
        setrejectreason: symbol!("srt_setrejectreason"),
        getlasterror: symbol!("srt_getlasterror"),
        getlasterror_str: symbol!("srt_getlasterror_str"),
        epoll_create: symbol!("srt_epoll_create"),
        epoll_add_usock: symbol!("srt_epoll_add_usock"),
        epoll_uwait: symbol!("srt_epoll_uwait"),
        epoll_release: symbol!("srt_epoll_release"),
        _library: library,
    };
    // SAFETY: plain calls with valid arguments; the handler is a 'static function.
    let started = unsafe {
        setloghandler(std::ptr::null_mut(), Some(log));
        setlogflags(LOG_FLAGS_BARE);
        setloglevel(LOG_ERR);
        startup()
    };
    match started {
        -1 => Err("srt_startup failed".into()),
        _ => Ok(api),
    }
}

/// libsrt's own log lines, as tracing events (its errors are mostly a peer's doing).
extern "C" fn log(
    _: *mut c_void,
    level: c_int,
    _: *const c_char,
    _: c_int,
    area: *const c_char,
    message: *const c_char,
) {
    let text = |text: *const c_char| match text.is_null() {
        true => "".into(),
        // SAFETY: libsrt passes NUL-terminated strings valid for the call.
        false => unsafe { CStr::from_ptr(text) }.to_string_lossy(),
    };
    // A panic (in a subscriber) must not unwind into C.
    let _ = std::panic::catch_unwind(|| {
        let (area, message) = (text(area), text(message));
        match level {
            ..=LOG_CRIT => tracing::warn!(target: "libsrt", %area, "{message}"),
            LOG_ERR => tracing::info!(target: "libsrt", %area, "{message}"),
            _ => tracing::debug!(target: "libsrt", %area, "{message}"),
        }
    });
}

/// The last error of a call on this thread.
fn failed(api: &Api, call: &'static str) -> SrtError {
    // SAFETY: libsrt keeps the last error per thread; the string lives until the next call.
    let code = unsafe { (api.getlasterror)(std::ptr::null_mut()) };
    let message = unsafe { CStr::from_ptr((api.getlasterror_str)()) }
        .to_string_lossy()
        .into_owned();
    SrtError::Call {
        call,
        code,
        message,
    }
}

/// Maps libsrt's `-1` returns to the thread's last error.
fn check(api: &Api, call: &'static str, result: c_int) -> Result<c_int, SrtError> {
    match result {
        -1 => Err(failed(api, call)),
        ok => Ok(ok),
    }
}

/// Decides, during the handshake, whether a caller may connect. Runs on libsrt's
/// receiving thread, which serves every connection on the port: answer quickly.
pub(crate) trait Gate: Send + Sync {
    /// Err: the rejection code the caller is told (`1000 + an HTTP status`, SRT's
    /// predefined reasons). `socket` is the id [`Listener::accept`] returns later.
    fn admit(&self, socket: c_int, stream_id: &str, peer: Option<SocketAddr>) -> Result<(), c_int>;
}

/// Options a listener gives its connections.
pub(crate) struct ListenOptions<'a> {
    pub(crate) latency: Duration,
    /// When set, callers must encrypt with it (any key length); otherwise they must not.
    pub(crate) passphrase: Option<&'a str>,
}

/// A listening SRT socket.
pub(crate) struct Listener {
    api: &'static Api,
    socket: c_int,
    epoll: c_int,
    /// [`listen_hook`]'s opaque pointer, from `Box::into_raw`: freed only after the
    /// socket is closed, when libsrt calls the hook no more.
    hook: *mut Hook,
}

// SAFETY: the hook is only read (by libsrt's thread, through `&Hook`, which is Sync) and
// freed once, by whichever thread drops the listener.
unsafe impl Send for Listener {}

impl Listener {
    pub(crate) fn bind(
        addr: SocketAddr,
        options: &ListenOptions<'_>,
        gate: Arc<dyn Gate>,
    ) -> Result<Self, SrtError> {
        let api = api()?;
        // SAFETY (all calls below): valid pointers to live values of the sizes passed.
        let socket = check(api, "srt_create_socket", unsafe { (api.create_socket)() })?;
        let mut listener = Self {
            api,
            socket,
            epoll: -1,
            hook: Box::into_raw(Box::new(Hook { api, gate })),
        };
        listener.set(SRTO_RCVSYN, 0)?;
        let latency = options.latency.as_millis().try_into().unwrap_or(c_int::MAX);
        listener.set(SRTO_LATENCY, latency)?;
        if let Some(passphrase) = options.passphrase {
            let len = passphrase.len() as c_int;
            let set = unsafe {
                (api.setsockflag)(socket, SRTO_PASSPHRASE, passphrase.as_ptr().cast(), len)
            };
            check(api, "SRTO_PASSPHRASE", set)?;
        }
        let opaque = listener.hook.cast();
        let hooked = unsafe { (api.listen_callback)(socket, Some(listen_hook), opaque) };
        check(api, "srt_listen_callback", hooked)?;
        let addr = SockAddr::from(addr);
        check(api, "srt_bind", unsafe {
            (api.bind)(socket, addr.as_ptr().cast(), addr.len() as c_int)
        })?;
        check(api, "srt_listen", unsafe { (api.listen)(socket, 64) })?;
        listener.epoll = check(api, "srt_epoll_create", unsafe { (api.epoll_create)() })?;
        let events = SRT_EPOLL_IN | SRT_EPOLL_ERR;
        check(api, "srt_epoll_add_usock", unsafe {
            (api.epoll_add_usock)(listener.epoll, socket, &events)
        })?;
        Ok(listener)
    }

    fn set(&self, option: c_int, value: c_int) -> Result<(), SrtError> {
        set_flag(self.api, self.socket, option, value)
    }

    pub(crate) fn local_addr(&self) -> Result<SocketAddr, SrtError> {
        // SAFETY: libsrt writes at most `len` bytes of a sockaddr into the storage.
        let named = unsafe {
            SockAddr::try_init(|storage, len| {
                let mut size = *len as c_int;
                let named = (self.api.getsockname)(self.socket, storage.cast(), &mut size);
                *len = size as _;
                match named {
                    -1 => Err(std::io::Error::other("srt_getsockname")),
                    _ => Ok(()),
                }
            })
        };
        let ((), named) = named.map_err(|_| failed(self.api, "srt_getsockname"))?;
        named.as_socket().ok_or(SrtError::Call {
            call: "srt_getsockname",
            code: 0,
            message: "not an IP socket address".into(),
        })
    }

    /// The next connection that completed its handshake, waiting at most `timeout`.
    pub(crate) fn accept(&self, timeout: Duration) -> Result<Option<Socket>, SrtError> {
        let api = self.api;
        let mut event = EpollEvent {
            socket: -1,
            events: 0,
        };
        let wait = timeout.as_millis().try_into().unwrap_or(i64::MAX);
        // SAFETY: one event's room, as passed.
        let ready = unsafe { (api.epoll_uwait)(self.epoll, &mut event, 1, wait) };
        match check(api, "srt_epoll_uwait", ready) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(error) if error.is_again() => return Ok(None),
            Err(error) => return Err(error),
        }
        // SAFETY: null address pointers: libsrt then writes no address.
        let accepted =
            unsafe { (api.accept)(self.socket, std::ptr::null_mut(), std::ptr::null_mut()) };
        match check(api, "srt_accept", accepted) {
            Ok(socket) => {
                let socket = Socket { api, id: socket };
                set_flag(api, socket.id, SRTO_RCVSYN, 1)?;
                Ok(Some(socket))
            }
            Err(error) if error.is_again() => Ok(None),
            Err(error) => Err(error),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // SAFETY: the ids are this listener's; closing it waits out a hook call in
        // progress and unhooks it, so the hook can be freed after.
        unsafe {
            (self.api.close)(self.socket);
            if self.epoll >= 0 {
                (self.api.epoll_release)(self.epoll);
            }
            drop(Box::from_raw(self.hook));
        }
    }
}

fn set_flag(api: &Api, socket: c_int, option: c_int, value: c_int) -> Result<(), SrtError> {
    let size = size_of::<c_int>() as c_int;
    // SAFETY: an int option, passed as a pointer to a live int of that size.
    let set = unsafe { (api.setsockflag)(socket, option, (&raw const value).cast(), size) };
    check(api, "srt_setsockflag", set).map(drop)
}

/// What libsrt's listen callback reads through its opaque pointer.
struct Hook {
    api: &'static Api,
    gate: Arc<dyn Gate>,
}

/// The rejection for a gate that panicked (`1000 + 500`).
const REJECT_INTERNAL: c_int = 1500;

/// libsrt's listen callback: asks the gate, and tells a refused caller why. A panic must
/// not cross into C: it refuses the caller instead.
extern "C" fn listen_hook(
    opaque: *mut c_void,
    socket: c_int,
    _handshake_version: c_int,
    peer: *const c_void,
    stream_id: *const c_char,
) -> c_int {
    // SAFETY: `opaque` is the listener's boxed hook, alive while libsrt may call this.
    let hook = unsafe { &*opaque.cast::<Hook>() };
    let stream_id = match stream_id.is_null() {
        true => "",
        // SAFETY: a NUL-terminated string valid for the call. Not UTF-8: no key.
        false => unsafe { CStr::from_ptr(stream_id) }.to_str().unwrap_or(""),
    };
    let admitted = std::panic::catch_unwind(AssertUnwindSafe(|| {
        hook.gate.admit(socket, stream_id, peer_addr(peer))
    }));
    match admitted.unwrap_or(Err(REJECT_INTERNAL)) {
        Ok(()) => 0,
        Err(code) => {
            // SAFETY: the pending socket libsrt asked about.
            unsafe { (hook.api.setrejectreason)(socket, code) };
            -1
        }
    }
}

/// The caller's address: libsrt's `sockaddr_any`, large enough for IPv6.
fn peer_addr(peer: *const c_void) -> Option<SocketAddr> {
    if peer.is_null() {
        return None;
    }
    const SOCKADDR_IN6: usize = 28;
    // SAFETY: libsrt's address holds at least a sockaddr_in6's bytes; socket2 reads the
    // family and only that family's fields.
    let copied = unsafe {
        SockAddr::try_init(|storage, len| {
            std::ptr::copy_nonoverlapping(peer.cast::<u8>(), storage.cast::<u8>(), SOCKADDR_IN6);
            *len = SOCKADDR_IN6 as _;
            Ok(())
        })
    };
    copied.ok()?.1.as_socket()
}

/// An accepted connection, closed when dropped.
pub(crate) struct Socket {
    api: &'static Api,
    id: c_int,
}

impl Socket {
    /// Blocking reads wait at most this long (then [`Socket::receive`] answers `None`).
    pub(crate) fn set_receive_timeout(&self, timeout: Duration) -> Result<(), SrtError> {
        let millis = timeout.as_millis().try_into().unwrap_or(c_int::MAX);
        set_flag(self.api, self.id, SRTO_RCVTIMEO, millis)
    }

    /// One message into `buffer` (at least [`MAX_PAYLOAD`] long): its length, `None`
    /// after the receive timeout, or an error when the connection is gone.
    pub(crate) fn receive(&self, buffer: &mut [u8]) -> Result<Option<usize>, SrtError> {
        let len = buffer.len().try_into().unwrap_or(c_int::MAX);
        // SAFETY: libsrt writes at most `len` bytes into the buffer.
        let read = unsafe { (self.api.recvmsg)(self.id, buffer.as_mut_ptr().cast(), len) };
        match check(self.api, "srt_recvmsg", read) {
            Ok(read) => Ok(Some(read as usize)),
            Err(error) if error.is_again() => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub(crate) fn id(&self) -> c_int {
        self.id
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: this socket's own id, closed once.
        unsafe { (self.api.close)(self.id) };
    }
}
