//! kiln: the Rust side of kiln's stage ABI (docs/stage-abi.md).
//!
//! Built with Debian's rustc 1.63 for `wasm32-wasi`, std only, as an rlib
//! that a stage links with `--extern kiln=libkiln.rlib`. A stage calls
//! [`run`] with a closure taking the decoded [`Options`]; an error it returns
//! is printed as `<stage>: <error>` on stderr and the process exits 1.
//!
//! What WASI cannot say is reached through the `kiln_hostfs` host module
//! (docs/hostfs.md): [`chmod`] and [`lchown`] here.
//!
//! The JSON support is deliberately small, like the C SDK's: the options must
//! be one JSON object, and the accessors read top-level members that are
//! strings, integers or booleans. [`Options::raw`] hands out anything else as
//! JSON text.

use std::error::Error;
use std::ffi::CString;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::raw::{c_char, c_int};
use std::process;

/// What a stage returns: any error is reported and fails the stage.
pub type StageResult = Result<(), Box<dyn Error>>;

/// Nesting deeper than this is refused rather than risking the wasm stack.
const MAX_DEPTH: usize = 64;

/// The running stage's name: argv[0], as kiln sets it.
pub fn name() -> String {
    std::env::args()
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "stage".to_string())
}

/// Decodes the options on stdin, runs `stage` with them and exits: 0 on
/// success, 1 after printing the error.
pub fn run<F: FnOnce(&Options) -> StageResult>(stage: F) -> ! {
    let result = match Options::from_stdin() {
        Ok(opts) => stage(&opts),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = result {
        let _ = writeln!(io::stderr(), "{}: {}", name(), explain_eio(e.to_string()));
        process::exit(1);
    }
    process::exit(0)
}

/// A malformed options document or a member of the wrong type.
#[derive(Debug)]
pub struct OptionsError(String);

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for OptionsError {}

/// A stage's options: a validated JSON object.
pub struct Options {
    text: String,
}

impl Options {
    /// Reads stdin to the end and validates it. Empty input means `{}`.
    pub fn from_stdin() -> Result<Options, OptionsError> {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| OptionsError(format!("reading options from stdin: {}", e)))?;
        Options::parse(text)
    }

    /// Validates `text` as one JSON object.
    pub fn parse(text: String) -> Result<Options, OptionsError> {
        let b = text.as_bytes();
        let start = skip_ws(b, 0);
        if start == b.len() {
            return Ok(Options { text: "{}".to_string() });
        }
        if b[start] != b'{' {
            return Err(OptionsError(format!(
                "decoding options: not a JSON object (at byte {})",
                start
            )));
        }
        let end = skip_value(b, start, 0).map_err(|at| {
            OptionsError(format!("decoding options: malformed JSON (at byte {})", at))
        })?;
        let end = skip_ws(b, end);
        if end != b.len() {
            return Err(OptionsError(format!(
                "decoding options: data after the object (at byte {})",
                end
            )));
        }
        Ok(Options { text })
    }

    /// The raw JSON text of the last member named `key`, if present and not
    /// null.
    pub fn raw(&self, key: &str) -> Option<&str> {
        let b = self.text.as_bytes();
        let mut found = None;
        let mut i = skip_ws(b, skip_ws(b, 0) + 1);
        // The document is validated, so the scan below cannot fail.
        while i < b.len() && b[i] == b'"' {
            let key_end = skip_string(b, i).ok()?;
            let matched = decode_string(&b[i..key_end]) == key;
            i = skip_ws(b, skip_ws(b, key_end) + 1);
            let value_end = skip_value(b, i, 1).ok()?;
            if matched {
                found = Some(&self.text[i..value_end]);
            }
            i = skip_ws(b, value_end);
            if i < b.len() && b[i] == b',' {
                i = skip_ws(b, i + 1);
            }
        }
        found.filter(|v| *v != "null")
    }

    /// A string member, decoded; `Ok(None)` when absent or null.
    pub fn string(&self, key: &str) -> Result<Option<String>, OptionsError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) if v.starts_with('"') => Ok(Some(decode_string(v.as_bytes()))),
            Some(_) => Err(wrong_type(key, "a string")),
        }
    }

    /// An integer member; fractions and exponents are refused.
    pub fn int(&self, key: &str) -> Result<Option<i64>, OptionsError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| wrong_type(key, "an integer")),
        }
    }

    /// A boolean member.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, OptionsError> {
        match self.raw(key) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(wrong_type(key, "true or false")),
        }
    }
}

fn wrong_type(key: &str, want: &str) -> OptionsError {
    OptionsError(format!("option {}: want {}", key, want))
}

extern "C" {
    // wasi-libc's symlink(2), linked into every wasm32-wasi program; std's
    // own (std::os::wasi::fs::symlink_path) is unstable in Rust 1.63.
    fn symlink(target: *const c_char, linkpath: *const c_char) -> c_int;
}

/// Creates the symbolic link `link` pointing at `target`.
pub fn make_symlink(target: &str, link: &str) -> io::Result<()> {
    let t = CString::new(target)?;
    let l = CString::new(link)?;
    // SAFETY: both are valid NUL-terminated strings that outlive the call.
    if unsafe { symlink(t.as_ptr(), l.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// The kiln_hostfs imports this SDK wraps. Paths are (pointer, length),
// absolute or relative to "/"; results are 0 or a WASI errno, which is what
// std's raw OS errors are on wasm32-wasi.
#[link(wasm_import_module = "kiln_hostfs")]
extern "C" {
    #[link_name = "chmod"]
    fn hostfs_chmod(path: *const u8, path_len: u32, mode: u32) -> i32;
    #[link_name = "lchown"]
    fn hostfs_lchown(path: *const u8, path_len: u32, uid: u32, gid: u32) -> i32;
    #[link_name = "eio_cause"]
    fn hostfs_eio_cause(errno: *mut u32) -> i32;
}

/// WASI's EIO.
const EIO: i32 = 29;

/// Rewrites the "I/O error" in a failing stage's message as the host error
/// behind it: wazero's WASI cannot say ENOSPC, EDQUOT, EFBIG, EMLINK, ...
/// and says EIO, and kiln_hostfs keeps the real errno, so a full disk reads
/// "no space left on device".
fn explain_eio(msg: String) -> String {
    let eio = io::Error::from_raw_os_error(EIO).to_string();
    if !msg.contains(&eio) {
        return msg;
    }
    let mut cause: u32 = 0;
    // SAFETY: the pointer is to a live u32.
    if unsafe { hostfs_eio_cause(&mut cause) } != 0 || cause == 0 || cause as i32 == EIO {
        return msg;
    }
    // wasi-libc spells it "No space left on device"; kiln's own messages,
    // from Linux, in lower case.
    let real = io::Error::from_raw_os_error(cause as i32).to_string();
    let real = real[..1].to_lowercase() + &real[1..];
    msg.replace(&eio, &real)
}

fn errno(rc: i32) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Sets the permission bits (07777) of `path`, following a final symlink.
pub fn chmod(path: &str, mode: u32) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live &str.
    errno(unsafe { hostfs_chmod(path.as_ptr(), path.len() as u32, mode) })
}

/// Sets the owner and group of `path` itself; `u32::MAX` keeps an id.
/// Call it before [`chmod`]: a change of owner clears setuid and setgid.
pub fn lchown(path: &str, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: the pointer and length describe a live &str.
    errno(unsafe { hostfs_lchown(path.as_ptr(), path.len() as u32, uid, gid) })
}

// ---- a JSON scanner: validates and skips values; errors are byte offsets ----

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

fn at(b: &[u8], i: usize) -> u8 {
    if i < b.len() {
        b[i]
    } else {
        0
    }
}

/// `i` is at the opening quote; returns the index just past the closing one.
fn skip_string(b: &[u8], mut i: usize) -> Result<usize, usize> {
    i += 1;
    loop {
        match at(b, i) {
            b'"' => return Ok(i + 1),
            c if c < 0x20 => return Err(i),
            b'\\' => {
                i += 1;
                match at(b, i) {
                    b'u' => {
                        for k in 1..=4 {
                            if !at(b, i + k).is_ascii_hexdigit() {
                                return Err(i + k);
                            }
                        }
                        i += 5;
                    }
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 1,
                    _ => return Err(i),
                }
            }
            _ => i += 1,
        }
    }
}

fn skip_digits(b: &[u8], mut i: usize) -> Result<usize, usize> {
    if !at(b, i).is_ascii_digit() {
        return Err(i);
    }
    while at(b, i).is_ascii_digit() {
        i += 1;
    }
    Ok(i)
}

fn skip_number(b: &[u8], mut i: usize) -> Result<usize, usize> {
    if at(b, i) == b'-' {
        i += 1;
    }
    i = if at(b, i) == b'0' { i + 1 } else { skip_digits(b, i)? };
    if at(b, i) == b'.' {
        i = skip_digits(b, i + 1)?;
    }
    if matches!(at(b, i), b'e' | b'E') {
        i += 1;
        if matches!(at(b, i), b'+' | b'-') {
            i += 1;
        }
        i = skip_digits(b, i)?;
    }
    Ok(i)
}

fn skip_literal(b: &[u8], i: usize, word: &str) -> Result<usize, usize> {
    if b[i..].starts_with(word.as_bytes()) {
        Ok(i + word.len())
    } else {
        Err(i)
    }
}

fn skip_value(b: &[u8], i: usize, depth: usize) -> Result<usize, usize> {
    let i = skip_ws(b, i);
    match at(b, i) {
        b'"' => skip_string(b, i),
        b'{' | b'[' => skip_container(b, i, depth),
        b't' => skip_literal(b, i, "true"),
        b'f' => skip_literal(b, i, "false"),
        b'n' => skip_literal(b, i, "null"),
        _ => skip_number(b, i),
    }
}

fn skip_container(b: &[u8], i: usize, depth: usize) -> Result<usize, usize> {
    let object = b[i] == b'{';
    let close = if object { b'}' } else { b']' };
    if depth >= MAX_DEPTH {
        return Err(i);
    }
    let mut i = skip_ws(b, i + 1);
    if at(b, i) == close {
        return Ok(i + 1);
    }
    loop {
        if object {
            if at(b, i) != b'"' {
                return Err(i);
            }
            i = skip_ws(b, skip_string(b, i)?);
            if at(b, i) != b':' {
                return Err(i);
            }
            i += 1;
        }
        i = skip_ws(b, skip_value(b, i, depth + 1)?);
        match at(b, i) {
            c if c == close => return Ok(i + 1),
            b',' => i = skip_ws(b, i + 1),
            _ => return Err(i),
        }
    }
}

fn hex4(b: &[u8]) -> u32 {
    b[..4].iter().fold(0, |n, c| n << 4 | (*c as char).to_digit(16).unwrap_or(0))
}

/// Decodes a validated string token, quotes included. Unpaired surrogates
/// become U+FFFD, as in Go.
fn decode_string(tok: &[u8]) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(tok.len());
    let mut i = 1;
    while i < tok.len() - 1 {
        if tok[i] != b'\\' {
            out.push(tok[i]);
            i += 1;
            continue;
        }
        i += 1;
        let simple = match tok[i] {
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            c => Some(c),
        };
        if let Some(c) = simple {
            out.push(c);
            i += 1;
            continue;
        }
        let mut r = hex4(&tok[i + 1..]);
        i += 5;
        if (0xd800..0xdc00).contains(&r) && tok[i..].starts_with(b"\\u") {
            let lo = hex4(&tok[i + 2..]);
            if (0xdc00..0xe000).contains(&lo) {
                r = 0x10000 + ((r - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            }
        }
        let ch = char::from_u32(r).unwrap_or('\u{fffd}');
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    // The input was a Rust String and escapes decode to valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}
