//! PostgreSQL's md5 password response: `"md5" + md5(md5(password + user) + salt)`.

use md5::{Digest, Md5};

fn hex_md5(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The PasswordMessage payload answering AuthenticationMD5Password.
pub fn md5_response(user: &str, password: &str, salt: [u8; 4]) -> String {
    let inner = hex_md5(&[password.as_bytes(), user.as_bytes()]);
    format!("md5{}", hex_md5(&[inner.as_bytes(), &salt]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_postgres_md5_scheme() {
        // Computed independently: md5("foobar") then md5(hex || salt).
        assert_eq!(
            super::hex_md5(&[b"foo", b"bar"]),
            "3858f62230ac3c915f300c664312c63f"
        );
        assert_eq!(
            super::md5_response("bar", "foo", [1, 2, 3, 4]),
            "md56e4f0b50f7277feb74acbf2a7734c9cb"
        );
    }
}
