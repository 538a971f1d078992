//! Everything pgward decodes from a server: tagged frames and the views of
//! authentication requests, key data, parameter status, ReadyForQuery and
//! error fields. Any input must decode or fail cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgward::wire::backend::{ready_for_query_status, AuthRequest, BackendKeyData, ParameterStatus};
use pgward::wire::error_response::ErrorFields;
use pgward::wire::frame::Frame;

fuzz_target!(|data: &[u8]| {
    for f in Frame::iter(data, 1 << 20) {
        let Ok(f) = f else { break };
        match f.tag {
            b'R' => {
                if let Ok(r) = AuthRequest::parse(f.body) {
                    let _ = r.offers("SCRAM-SHA-256");
                }
            }
            b'K' => drop(BackendKeyData::parse(f.body)),
            b'S' => drop(ParameterStatus::parse(f.body)),
            b'Z' => drop(ready_for_query_status(f.body)),
            b'E' | b'N' => {
                if let Ok(e) = ErrorFields::parse(f.body) {
                    let _ = (e.code(), e.message(), e.is_fatal());
                }
            }
            _ => {}
        }
    }
});
