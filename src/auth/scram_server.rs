//! The server side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS: checks an agent's
//! proof against a stored verifier, and on TLS connections the channel
//! binding (tls-server-end-point) too.

use super::scram::{attributes, b64, ct_eq, hmac_sha256, sha256, unb64, Verifier};
use super::AuthError;

/// Channel binding on a TLS connection: the tls-server-end-point data, and
/// whether the client chose SCRAM-SHA-256-PLUS.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The hash of the server certificate (RFC 5929).
    pub end_point: &'a [u8],
    /// True when the client picked the -PLUS mechanism.
    pub plus: bool,
}

/// A SCRAM exchange in progress, after the server-first message was sent.
pub struct ScramServer {
    verifier: Verifier,
    /// What the client-final `c=` attribute must decode to.
    cbind_input: Vec<u8>,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramServer {
    /// Handles the client-first message and returns the server-first message.
    ///
    /// `server_nonce` is appended to the client's nonce; pass a fresh random one.
    pub fn start(
        verifier: Verifier,
        client_first: &[u8],
        server_nonce: &str,
        binding: Option<Binding>,
    ) -> Result<(ScramServer, String), AuthError> {
        let msg = std::str::from_utf8(client_first)
            .map_err(|_| AuthError::Malformed("client-first-message is not UTF-8"))?;
        let (gs2_header, bare) = split_gs2_header(msg)?;
        let flag = gs2_header.split(',').next().unwrap_or_default();
        let mut cbind_input = gs2_header.as_bytes().to_vec();
        match (binding, flag) {
            (Some(b), "p=tls-server-end-point") if b.plus => {
                cbind_input.extend_from_slice(b.end_point)
            }
            (Some(b), f) if b.plus => {
                let _ = f;
                return Err(AuthError::Malformed(
                    "SCRAM-SHA-256-PLUS needs p=tls-server-end-point",
                ));
            }
            // The client could bind, we offered -PLUS, yet it says we cannot:
            // someone stripped the offer (RFC 5802, section 6).
            (Some(_), "y") => return Err(AuthError::Malformed("channel binding downgrade")),
            (_, f) if f.starts_with("p=") => {
                return Err(AuthError::Unsupported(
                    "channel binding without SCRAM-SHA-256-PLUS",
                ))
            }
            _ => {}
        }
        let mut client_nonce = None;
        for (k, v) in attributes(bare) {
            match k {
                b'n' => {} // PostgreSQL ignores the SCRAM user name; so do we.
                b'r' => client_nonce = Some(v),
                b'm' => return Err(AuthError::Unsupported("SCRAM extensions")),
                _ => return Err(AuthError::Malformed("unexpected attribute in client-first")),
            }
        }
        let client_nonce = client_nonce
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic() && b != b','))
            .ok_or(AuthError::Malformed("missing or invalid client nonce"))?;
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            b64(&verifier.salt),
            verifier.iterations
        );
        Ok((
            ScramServer {
                verifier,
                cbind_input,
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
                nonce,
            },
            server_first,
        ))
    }

    /// Checks the client-final message; on success returns the server-final
    /// message to send with AuthenticationSASLFinal.
    pub fn finish(self, client_final: &[u8]) -> Result<String, AuthError> {
        let msg = std::str::from_utf8(client_final)
            .map_err(|_| AuthError::Malformed("client-final-message is not UTF-8"))?;
        let proof_at = msg
            .rfind(",p=")
            .ok_or(AuthError::Malformed("missing proof"))?;
        let without_proof = &msg[..proof_at];
        let proof = unb64(&msg[proof_at + 3..])?;
        let mut binding = None;
        let mut nonce = None;
        for (k, v) in attributes(without_proof) {
            match k {
                b'c' => binding = Some(v),
                b'r' => nonce = Some(v),
                _ => return Err(AuthError::Malformed("unexpected attribute in client-final")),
            }
        }
        if binding.map(unb64).transpose()?.as_deref() != Some(self.cbind_input.as_slice()) {
            return Err(AuthError::Malformed("channel binding does not match"));
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(AuthError::Malformed("nonce does not match"));
        }
        if proof.len() != 32 {
            return Err(AuthError::Malformed("proof is not 32 bytes"));
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = hmac_sha256(&self.verifier.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for (i, k) in client_key.iter_mut().enumerate() {
            *k = proof[i] ^ signature[i];
        }
        if !ct_eq(&sha256(&client_key), &self.verifier.stored_key) {
            return Err(AuthError::WrongPassword);
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", b64(&server_signature)))
    }
}

/// Splits `gs2-header` (`n,,` or `y,,`, with an optional authzid) from the rest.
fn split_gs2_header(msg: &str) -> Result<(&str, &str), AuthError> {
    let mut parts = msg.splitn(3, ',');
    let flag = parts.next().unwrap_or_default();
    let authzid = parts
        .next()
        .ok_or(AuthError::Malformed("truncated gs2 header"))?;
    let bare = parts
        .next()
        .ok_or(AuthError::Malformed("truncated gs2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => {}
        _ => return Err(AuthError::Malformed("bad channel binding flag")),
    }
    if !authzid.is_empty() && !authzid.starts_with("a=") {
        return Err(AuthError::Malformed("bad authorization identity"));
    }
    let header_len = flag.len() + authzid.len() + 2;
    Ok((&msg[..header_len], bare))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The exchange from RFC 7677, section 3 (user "user", password "pencil").
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn verifier(password: &str) -> Verifier {
        let salt = unb64("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        Verifier::from_password(password, &salt, 4096)
    }

    #[test]
    fn accepts_the_rfc_7677_exchange() {
        let (server, first) = ScramServer::start(
            verifier("pencil"),
            CLIENT_FIRST.as_bytes(),
            SERVER_NONCE,
            None,
        )
        .unwrap();
        assert_eq!(first, SERVER_FIRST);
        assert_eq!(
            server.finish(CLIENT_FINAL.as_bytes()).unwrap(),
            SERVER_FINAL
        );
    }

    #[test]
    fn refuses_a_wrong_password_and_tampering() {
        let (server, _) = ScramServer::start(
            verifier("pencil2"),
            CLIENT_FIRST.as_bytes(),
            SERVER_NONCE,
            None,
        )
        .unwrap();
        assert_eq!(
            server.finish(CLIENT_FINAL.as_bytes()),
            Err(AuthError::WrongPassword)
        );

        let (server, _) =
            ScramServer::start(verifier("pencil"), CLIENT_FIRST.as_bytes(), "other", None).unwrap();
        assert!(server.finish(CLIENT_FINAL.as_bytes()).is_err());

        for bad in [
            "p=tls-server-end-point,,n=,r=abc",
            "x,,n=,r=abc",
            "n,,n=,r=",
            "n,",
        ] {
            assert!(
                ScramServer::start(verifier("pencil"), bad.as_bytes(), "s", None).is_err(),
                "{bad}"
            );
        }
    }
}
