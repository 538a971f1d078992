//! Everything pgward decodes from a client: startup packets, then tagged
//! frames and the views of Query, Parse and SASLInitialResponse. Any input must
//! decode or fail cleanly, never panic or over-read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pgward::wire::frame::Frame;
use pgward::wire::frontend::{Parse, Query, SaslInitialResponse};
use pgward::wire::startup::{check_startup, parse_startup, StartupPacket};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(len)) = check_startup(data) {
        if let Ok(StartupPacket::Startup(s)) = parse_startup(&data[..len]) {
            for (k, v) in s.params() {
                assert!(!k.is_empty());
                let _ = v.len();
            }
        }
    }
    let mut frames = Frame::iter(data, 1 << 16);
    for f in &mut frames {
        let Ok(f) = f else { break };
        match f.tag {
            b'Q' => drop(Query::parse(f.body)),
            b'P' => {
                if let Ok(p) = Parse::parse(f.body) {
                    let _ = p.param_types().count();
                }
            }
            b'p' => drop(SaslInitialResponse::parse(f.body)),
            _ => {}
        }
    }
    assert!(frames.rest().len() <= data.len());
});
