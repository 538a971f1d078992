//! Fuzzes the admin API's HTTP request parser: any bytes must give a
//! request, a need for more, or a refusal with a 4xx/5xx status, never a
//! panic; a parsed request's consumed length is within the input, and
//! parsing the same bytes again agrees.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pgward::admin::http::{parse_request, Limits, Parsed};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_head: 2048,
        max_body: 1024,
    };
    match parse_request(data, &limits) {
        Parsed::Complete(req, used) => {
            assert!(used <= data.len());
            assert!(req.body.len() <= limits.max_body);
            let _ = req.bearer();
            let _ = pgward::admin::http::path_segments(&req.path);
            match parse_request(&data[..used], &limits) {
                Parsed::Complete(again, n) => assert_eq!((again.path, n), (req.path, used)),
                _ => panic!("the consumed bytes alone do not parse"),
            }
        }
        Parsed::Need => {}
        Parsed::Bad(status, _) => assert!((400..600).contains(&status)),
    }
});
