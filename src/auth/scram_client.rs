//! The client side of SCRAM-SHA-256, used when pgward logs in upstream.

use super::scram::{attributes, b64, ct_eq, hmac_sha256, salted_password, sha256, unb64};
use super::AuthError;

/// A client SCRAM exchange; create it, send `client_first`, then feed replies.
pub struct ScramClient {
    password: String,
    client_nonce: String,
    state: State,
}

enum State {
    Initial,
    SentFinal {
        server_key: [u8; 32],
        auth_message: String,
    },
    Done,
}

impl ScramClient {
    /// Starts an exchange with a given client nonce.
    pub fn new(password: &str, client_nonce: &str) -> Self {
        ScramClient {
            password: password.to_string(),
            client_nonce: client_nonce.to_string(),
            state: State::Initial,
        }
    }

    /// The client-first message (no channel binding, empty user name as libpq sends).
    pub fn client_first(&self) -> String {
        format!("n,,n=,r={}", self.client_nonce)
    }

    /// Handles server-first and returns the client-final message.
    pub fn handle_server_first(&mut self, server_first: &[u8]) -> Result<String, AuthError> {
        if !matches!(self.state, State::Initial) {
            return Err(AuthError::Malformed("unexpected server-first-message"));
        }
        let msg = std::str::from_utf8(server_first)
            .map_err(|_| AuthError::Malformed("server-first-message is not UTF-8"))?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for (k, v) in attributes(msg) {
            match k {
                b'r' => nonce = Some(v),
                b's' => salt = Some(unb64(v)?),
                b'i' => iterations = v.parse::<u32>().ok(),
                b'm' => return Err(AuthError::Unsupported("SCRAM extensions")),
                _ => {}
            }
        }
        let nonce = nonce.ok_or(AuthError::Malformed("missing server nonce"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(AuthError::Malformed("server nonce does not extend ours"));
        }
        let salt = salt.ok_or(AuthError::Malformed("missing salt"))?;
        let iterations = iterations
            .filter(|&i| i > 0)
            .ok_or(AuthError::Malformed("missing iteration count"))?;

        let salted = salted_password(&self.password, &salt, iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let stored_key = sha256(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("n=,r={},{msg},{without_proof}", self.client_nonce);
        let signature = hmac_sha256(&stored_key, auth_message.as_bytes());
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(signature) {
            *p ^= s;
        }
        self.state = State::SentFinal {
            server_key: hmac_sha256(&salted, b"Server Key"),
            auth_message,
        };
        Ok(format!("{without_proof},p={}", b64(&proof)))
    }

    /// Checks the server's signature in server-final.
    pub fn verify_server_final(&mut self, server_final: &[u8]) -> Result<(), AuthError> {
        let State::SentFinal {
            server_key,
            auth_message,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(AuthError::Malformed("unexpected server-final-message"));
        };
        let msg = std::str::from_utf8(server_final)
            .map_err(|_| AuthError::Malformed("server-final-message is not UTF-8"))?;
        for (k, v) in attributes(msg) {
            match k {
                b'e' => return Err(AuthError::WrongPassword),
                b'v' => {
                    let expected = hmac_sha256(&server_key, auth_message.as_bytes());
                    return if ct_eq(&unb64(v)?, &expected) {
                        Ok(())
                    } else {
                        Err(AuthError::Malformed("server signature does not verify"))
                    };
                }
                _ => {}
            }
        }
        Err(AuthError::Malformed("missing server signature"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::Verifier;
    use crate::auth::scram_server::ScramServer;

    #[test]
    fn talks_to_our_own_server() {
        let verifier = Verifier::generate("s3cret");
        let mut client = ScramClient::new("s3cret", "abcdef");
        let (server, first) =
            ScramServer::start(verifier, client.client_first().as_bytes(), "XYZ", None).unwrap();
        let fin = client.handle_server_first(first.as_bytes()).unwrap();
        let server_final = server.finish(fin.as_bytes()).unwrap();
        client.verify_server_final(server_final.as_bytes()).unwrap();
    }

    #[test]
    fn refuses_a_forged_server() {
        let mut client = ScramClient::new("s3cret", "abcdef");
        let wrong = Verifier::generate("other");
        let (server, first) =
            ScramServer::start(wrong, client.client_first().as_bytes(), "XYZ", None).unwrap();
        let fin = client.handle_server_first(first.as_bytes()).unwrap();
        assert_eq!(server.finish(fin.as_bytes()), Err(AuthError::WrongPassword));
        assert!(client.verify_server_final(b"v=AAAA").is_err());
        let mut client = ScramClient::new("s3cret", "abcdef");
        assert!(client.handle_server_first(b"r=zzz,s=AAAA,i=4096").is_err());
    }
}
