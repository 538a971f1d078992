//! Builders that append whole messages to an output buffer.

use bytes::{BufMut, BytesMut};

/// Appends a tagged message whose body `body` writes, fixing up the length.
pub fn message(out: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    out.put_u8(tag);
    let len_at = out.len();
    out.put_u32(0);
    body(out);
    let len = (out.len() - len_at) as u32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Appends an untagged (startup-phase) packet.
fn untagged(out: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) {
    let len_at = out.len();
    out.put_u32(0);
    body(out);
    let len = (out.len() - len_at) as u32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Appends a NUL-terminated string.
pub fn cstr(out: &mut BytesMut, s: &[u8]) {
    out.put_slice(s);
    out.put_u8(0);
}

// ---- backend messages (pgward -> client) ----

/// AuthenticationOk.
pub fn auth_ok(out: &mut BytesMut) {
    message(out, b'R', |b| b.put_u32(0));
}

/// AuthenticationCleartextPassword.
pub fn auth_cleartext(out: &mut BytesMut) {
    message(out, b'R', |b| b.put_u32(3));
}

/// AuthenticationSASL offering the given mechanisms.
pub fn auth_sasl(out: &mut BytesMut, mechanisms: &[&str]) {
    message(out, b'R', |b| {
        b.put_u32(10);
        for m in mechanisms {
            cstr(b, m.as_bytes());
        }
        b.put_u8(0);
    });
}

/// AuthenticationSASLContinue.
pub fn auth_sasl_continue(out: &mut BytesMut, data: &[u8]) {
    message(out, b'R', |b| {
        b.put_u32(11);
        b.put_slice(data);
    });
}

/// AuthenticationSASLFinal.
pub fn auth_sasl_final(out: &mut BytesMut, data: &[u8]) {
    message(out, b'R', |b| {
        b.put_u32(12);
        b.put_slice(data);
    });
}

/// BackendKeyData with a 4-byte secret (protocol 3.0).
pub fn backend_key_data(out: &mut BytesMut, pid: u32, secret: u32) {
    message(out, b'K', |b| {
        b.put_u32(pid);
        b.put_u32(secret);
    });
}

/// ParameterStatus.
pub fn parameter_status(out: &mut BytesMut, name: &str, value: &str) {
    message(out, b'S', |b| {
        cstr(b, name.as_bytes());
        cstr(b, value.as_bytes());
    });
}

/// ReadyForQuery with a transaction status of `I`, `T` or `E`.
pub fn ready_for_query(out: &mut BytesMut, status: u8) {
    message(out, b'Z', |b| b.put_u8(status));
}

/// NegotiateProtocolVersion: the newest minor version pgward supports and the
/// protocol options it did not recognise.
pub fn negotiate_protocol_version(out: &mut BytesMut, minor: u32, unrecognized: &[&str]) {
    message(out, b'v', |b| {
        b.put_u32(minor);
        b.put_u32(unrecognized.len() as u32);
        for o in unrecognized {
            cstr(b, o.as_bytes());
        }
    });
}

// ---- frontend messages (pgward -> upstream) ----

/// SSLRequest.
pub fn ssl_request(out: &mut BytesMut) {
    untagged(out, |b| b.put_u32(80_877_103));
}

/// CancelRequest.
pub fn cancel_request(out: &mut BytesMut, pid: u32, secret: &[u8]) {
    untagged(out, |b| {
        b.put_u32(80_877_102);
        b.put_u32(pid);
        b.put_slice(secret);
    });
}

/// StartupMessage for protocol 3.0 with the given parameters.
pub fn startup<'a>(out: &mut BytesMut, params: impl IntoIterator<Item = (&'a str, &'a str)>) {
    untagged(out, |b| {
        b.put_u32(196_608);
        for (k, v) in params {
            cstr(b, k.as_bytes());
            cstr(b, v.as_bytes());
        }
        b.put_u8(0);
    });
}

/// PasswordMessage (cleartext or md5 response).
pub fn password(out: &mut BytesMut, password: &[u8]) {
    message(out, b'p', |b| cstr(b, password));
}

/// SASLInitialResponse.
pub fn sasl_initial_response(out: &mut BytesMut, mechanism: &str, data: &[u8]) {
    message(out, b'p', |b| {
        cstr(b, mechanism.as_bytes());
        b.put_i32(data.len() as i32);
        b.put_slice(data);
    });
}

/// SASLResponse.
pub fn sasl_response(out: &mut BytesMut, data: &[u8]) {
    message(out, b'p', |b| b.put_slice(data));
}

/// Terminate.
pub fn terminate(out: &mut BytesMut) {
    message(out, b'X', |_| {});
}
