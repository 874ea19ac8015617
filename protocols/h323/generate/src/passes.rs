//! The fix-up passes of the H.323 ASN.1 regeneration, as pure text
//! transforms (std only), each with its unit tests.
//!
//! Over the ASN.1 text, before `rasn-compiler` sees it:
//! - [`resolve_name_clashes`]: types defined in more than one module are
//!   renamed in all but the first module (prefix per module), in the defining
//!   module and in every module that imports them from it. `rasn-compiler`
//!   keeps one definition per name across modules, so without this H.235's
//!   `Password` (a BMPString) became H.245's (an OCTET STRING), and so on.
//! - [`optional_extension_additions`]: every extension addition of a
//!   SEQUENCE or SET that is neither OPTIONAL nor DEFAULT becomes OPTIONAL.
//!   H.225.0 v8 makes many additions mandatory (`callIdentifier`,
//!   `h245Tunnelling`, ...); endpoints of older versions omit them. In PER
//!   every extension addition has its presence bit in the extension bitmap
//!   (ITU-T X.691 §19.7), so this changes no encoding, only what decodes.
//!
//! Over the generated Rust:
//! - [`copy_extension_addition_constraints`]: `rasn` 0.30 loses a delegate
//!   newtype's own constraints (value range, size, alphabet) when the newtype
//!   is the type of an extension-addition field: the derive asks
//!   `<Option<T> as AsnType>::CONSTRAINTS` (empty) instead of `T`'s, and the
//!   decoder passes `Constraints::default()`. `timeToLive` (INTEGER
//!   1..4294967295) then encodes as `02 01 3c` where X.691 gives `02 00 3b`.
//!   The pass copies the newtype's constraints onto each such field's
//!   `#[rasn(...)]` attribute.
//!
//! This file is also compiled into `confgate-h323`'s tests (`#[path]`), so
//! `cargo test -p confgate-h323` runs these tests with the rest of the crate.

use std::collections::{BTreeMap, BTreeSet};

/// One ASN.1 module's text and the prefix its clashing type names get.
#[derive(Debug, Clone)]
pub struct Module {
    /// The module's ASN.1 text.
    pub text: String,
    /// Prefix for its types whose names another module also defines, e.g.
    /// `H245` (the result must be a valid ASN.1 typereference).
    pub prefix: String,
}

/// Which bytes of `text` are code: not inside a comment (`--` to `--` or
/// end of line, `/* ... */`) nor a character string (`"..."`).
/// ITU-T X.680 §12.6 (comments) and §12.14 (cstring, `""` is a quote).
fn code_mask(text: &str) -> Vec<bool> {
    let b = text.as_bytes();
    let mut mask = vec![true; b.len()];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'-' && b.get(i + 1) == Some(&b'-') {
            let start = i;
            i += 2;
            while i < b.len() && b[i] != b'\n' && !(b[i] == b'-' && b.get(i + 1) == Some(&b'-')) {
                i += 1;
            }
            if i < b.len() && b[i] == b'-' {
                i += 2;
            }
            let end = i.min(b.len());
            mask[start..end].iter_mut().for_each(|m| *m = false);
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            let start = i;
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            let end = (i + 2).min(b.len());
            i = end;
            mask[start..end].iter_mut().for_each(|m| *m = false);
        } else if b[i] == b'"' {
            let start = i;
            i += 1;
            loop {
                if i >= b.len() {
                    break;
                }
                if b[i] == b'"' {
                    if b.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            mask[start..i].iter_mut().for_each(|m| *m = false);
        } else {
            i += 1;
        }
    }
    mask
}

/// `text` with comments and strings blanked to spaces (same byte offsets).
fn code_only(text: &str) -> String {
    let mask = code_mask(text);
    text.bytes()
        .zip(mask)
        .map(|(c, code)| if code || c == b'\n' { c as char } else { ' ' })
        .collect()
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// Replaces each whole ASN.1 reference `from` by `to` in code (never in
/// comments or strings). A reference is a maximal run of letters, digits and
/// hyphens, so `Password` does not match in `EncodedPwdPassword-x`.
pub fn rename_references(text: &str, renames: &BTreeMap<String, String>) -> String {
    if renames.is_empty() {
        return text.to_owned();
    }
    let code = code_only(text);
    let cb = code.as_bytes();
    let mut out = String::with_capacity(text.len() + 64);
    let mut last = 0;
    let mut i = 0;
    while i < cb.len() {
        if is_word(cb[i]) && (i == 0 || !is_word(cb[i - 1])) {
            let mut j = i;
            while j < cb.len() && is_word(cb[j]) {
                j += 1;
            }
            // A trailing hyphen is not part of a name ("Foo-" before a comment).
            let mut end = j;
            while end > i && cb[end - 1] == b'-' {
                end -= 1;
            }
            if let Some(new) = renames.get(&code[i..end]) {
                out.push_str(&text[last..i]);
                out.push_str(new);
                last = end;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// The module's name: its first word (X.680 §13.1 ModuleIdentifier).
pub fn module_name(text: &str) -> String {
    code_only(text).split_whitespace().next().unwrap_or_default().to_owned()
}

/// Type references the module defines: a line that starts with an upper-case
/// reference (optionally with a parameter list) followed by `::=`.
pub fn defined_types(text: &str) -> BTreeSet<String> {
    let code = code_only(text);
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let t = line.trim_start();
        let name: String = t
            .chars()
            .take_while(|&c| c.is_ascii_alphanumeric() || c == '-')
            .collect();
        if !name.starts_with(|c: char| c.is_ascii_uppercase()) {
            continue;
        }
        let mut rest = t[name.len()..].trim_start();
        if rest.starts_with('{') {
            match rest.find('}') {
                Some(close) => rest = rest[close + 1..].trim_start(),
                None => continue,
            }
        }
        if rest.starts_with("::=") {
            out.insert(name);
        }
    }
    out
}

/// The module's imports: `(module, symbols)` from its `IMPORTS ... ;`.
pub fn imports(text: &str) -> Vec<(String, Vec<String>)> {
    let code = code_only(text);
    let Some(start) = find_word(&code, "IMPORTS") else {
        return Vec::new();
    };
    let body = &code[start + "IMPORTS".len()..];
    let body = &body[..body.find(';').unwrap_or(body.len())];
    let mut out = Vec::new();
    let mut symbols = Vec::new();
    let mut tokens = body
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .map(|t| t.trim_end_matches("{}"));
    while let Some(token) = tokens.next() {
        if token == "FROM" {
            if let Some(module) = tokens.next() {
                out.push((module.to_owned(), std::mem::take(&mut symbols)));
            }
        } else if token.starts_with(|c: char| c.is_ascii_alphabetic()) {
            symbols.push(token.to_owned());
        }
    }
    out
}

fn find_word(code: &str, word: &str) -> Option<usize> {
    let b = code.as_bytes();
    let mut from = 0;
    while let Some(pos) = code[from..].find(word) {
        let at = from + pos;
        let end = at + word.len();
        let before = at == 0 || !is_word(b[at - 1]);
        let after = end >= b.len() || !is_word(b[end]);
        if before && after {
            return Some(at);
        }
        from = end;
    }
    None
}

/// Renames every type that more than one module defines in all of its
/// defining modules but the first one given (`prefix` + name), and follows
/// the rename into the modules that import it from there. Returns the renames
/// made, as `(module, old, new)`.
pub fn resolve_name_clashes(modules: &mut [Module]) -> Vec<(String, String, String)> {
    let names: Vec<String> = modules.iter().map(|m| module_name(&m.text)).collect();
    let defs: Vec<BTreeSet<String>> = modules.iter().map(|m| defined_types(&m.text)).collect();
    // For each module: old name -> new name, for what it defines and imports.
    let mut renames: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); modules.len()];
    let mut report = Vec::new();
    for (i, def) in defs.iter().enumerate() {
        for ty in def {
            let first = defs.iter().position(|d| d.contains(ty));
            if first == Some(i) {
                continue;
            }
            let new = format!("{}{}", modules[i].prefix, ty);
            renames[i].insert(ty.clone(), new.clone());
            report.push((names[i].clone(), ty.clone(), new.clone()));
            for (j, m) in modules.iter().enumerate() {
                let imported = imports(&m.text)
                    .iter()
                    .any(|(from, symbols)| *from == names[i] && symbols.contains(ty));
                if j != i && imported {
                    renames[j].insert(ty.clone(), new.clone());
                    report.push((names[j].clone(), ty.clone(), new.clone()));
                }
            }
        }
    }
    for (m, r) in modules.iter_mut().zip(&renames) {
        m.text = rename_references(&m.text, r);
    }
    report
}

/// Marks OPTIONAL every extension addition (a component after the extension
/// marker `...` of a SEQUENCE or SET, X.680 §25) that is neither OPTIONAL nor
/// DEFAULT. Returns the new text and how many components it changed.
pub fn optional_extension_additions(text: &str) -> (String, usize) {
    let code = code_only(text);
    let cb = code.as_bytes();
    let mut inserts = Vec::new();
    for keyword in ["SEQUENCE", "SET"] {
        let mut from = 0;
        while let Some(pos) = code[from..].find(keyword) {
            let at = from + pos;
            let end = at + keyword.len();
            from = end;
            if (at > 0 && is_word(cb[at - 1])) || (end < cb.len() && is_word(cb[end])) {
                continue;
            }
            let open = end + code[end..].len() - code[end..].trim_start().len();
            if cb.get(open) != Some(&b'{') {
                continue;
            }
            let Some(close) = matching_brace(cb, open) else {
                continue;
            };
            inserts.extend(additions_to_mark(&code, open + 1, close));
        }
    }
    inserts.sort_unstable();
    inserts.dedup();
    let mut out = text.to_owned();
    for &at in inserts.iter().rev() {
        out.insert_str(at, " OPTIONAL");
    }
    (out, inserts.len())
}

fn matching_brace(cb: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &c) in cb.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Byte offsets (just after the component's last code character) of the
/// extension additions in the body `code[start..end]` that need OPTIONAL.
fn additions_to_mark(code: &str, start: usize, end: usize) -> Vec<usize> {
    let cb = code.as_bytes();
    let mut components = Vec::new();
    let mut depth = 0i32;
    let mut begin = start;
    for (i, &c) in cb.iter().enumerate().take(end).skip(start) {
        match c {
            b'{' | b'(' | b'[' => depth += 1,
            b'}' | b')' | b']' => depth -= 1,
            b',' if depth == 0 => {
                components.push((begin, i));
                begin = i + 1;
            }
            _ => {}
        }
    }
    components.push((begin, end));
    let mut markers = 0;
    let mut out = Vec::new();
    for (s, e) in components {
        let part = code[s..e].trim();
        if part.is_empty() {
            continue;
        }
        if part.starts_with("...") {
            markers += 1;
            continue;
        }
        if markers != 1 {
            continue; // root component (before the first or after the second marker)
        }
        if part.starts_with("[[") {
            continue; // extension addition groups: not used by these modules
        }
        let top: Vec<&str> = top_level_words(part);
        let optional = top.last() == Some(&"OPTIONAL");
        let default = top.contains(&"DEFAULT");
        if !optional && !default {
            out.push(s + code[s..e].trim_end().len());
        }
    }
    out
}

/// The words of a component outside any brackets.
fn top_level_words(part: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut depth = 0i32;
    let mut word_start = None;
    for (i, c) in part.char_indices() {
        match c {
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            _ => {}
        }
        let in_word = depth == 0 && (c.is_ascii_alphanumeric() || c == '-');
        match (in_word, word_start) {
            (true, None) => word_start = Some(i),
            (false, Some(ws)) => {
                words.push(&part[ws..i]);
                word_start = None;
            }
            _ => {}
        }
    }
    if let Some(ws) = word_start {
        words.push(&part[ws..]);
    }
    words
}

/// Spans `(start, end)` of each `#[rasn(...)]` attribute in Rust text, end
/// just after its `]`, skipping Rust strings.
fn rasn_attributes(rust: &str) -> Vec<(usize, usize)> {
    let b = rust.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = rust[from..].find("#[rasn(") {
        let start = from + pos;
        let mut i = start + "#[rasn".len();
        let mut depth = 0i32;
        let mut in_str = false;
        while i < b.len() {
            let c = b[i];
            if in_str {
                if c == b'\\' {
                    i += 1;
                } else if c == b'"' {
                    in_str = false;
                }
            } else if c == b'"' {
                in_str = true;
            } else if c == b'(' {
                depth += 1;
            } else if c == b')' {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            i += 1;
        }
        let end = (i + 2).min(b.len()); // past ")]"
        out.push((start, end));
        from = end;
    }
    out
}

/// The top-level arguments of a `#[rasn(...)]` attribute, trimmed.
fn attribute_args(attr: &str) -> Vec<String> {
    let inner = attr
        .strip_prefix("#[rasn(")
        .and_then(|a| a.strip_suffix(")]"))
        .unwrap_or_default();
    let mut args = Vec::new();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut escaped = false;
    let mut cur = String::new();
    for c in inner.chars() {
        if in_str {
            cur.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                args.push(cur.trim().to_owned());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        args.push(cur.trim().to_owned());
    }
    args
}

/// The size constraint implied by a fixed-size rasn string type
/// (`FixedOctetString<16usize>`, `FixedBitString<8usize>`): rasn takes it
/// from the type's `CONSTRAINTS`, which extension additions lose too.
fn fixed_size(ty: &str) -> Option<String> {
    let n = ty
        .strip_prefix("FixedOctetString<")
        .or_else(|| ty.strip_prefix("FixedBitString<"))?
        .strip_suffix('>')?
        .trim_end_matches("usize");
    n.parse::<usize>().ok().map(|n| format!("size(\"{n}\")"))
}

fn is_constraint(arg: &str) -> bool {
    ["value(", "size(", "from("].iter().any(|p| arg.starts_with(p))
}

/// The item after an attribute: skips whitespace, further attributes and doc
/// comments, then returns the next line (trimmed).
fn next_item(rust: &str, after: usize) -> &str {
    let mut rest = &rust[after..];
    loop {
        rest = rest.trim_start();
        if rest.starts_with("#[") || rest.starts_with("//") {
            if rest.starts_with("#[rasn(") {
                // Another rasn attribute: its span is handled on its own.
                let end = rasn_attributes(rest).first().map_or(rest.len(), |&(_, e)| e);
                rest = &rest[end..];
            } else {
                rest = rest.split_once('\n').map_or("", |(_, r)| r);
            }
            continue;
        }
        return rest.lines().next().unwrap_or_default().trim();
    }
}

/// Constraints of each delegate newtype (`#[rasn(delegate, ...)] pub struct
/// Name(pub Inner);`), followed through newtypes without constraints of their
/// own to the first one that has some.
pub fn newtype_constraints(rust: &str) -> BTreeMap<String, Vec<String>> {
    let mut own: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    for (s, e) in rasn_attributes(rust) {
        let args = attribute_args(&rust[s..e]);
        if !args.iter().any(|a| a == "delegate") {
            continue;
        }
        let item = next_item(rust, e);
        let Some(rest) = item.strip_prefix("pub struct ") else {
            continue;
        };
        let Some((name, inner)) = rest.split_once("(pub ") else {
            continue;
        };
        let inner = inner.trim_end_matches(';').trim_end_matches(')').trim();
        let mut constraints: Vec<String> = args.into_iter().filter(|a| is_constraint(a)).collect();
        if constraints.is_empty() {
            constraints.extend(fixed_size(inner));
        }
        own.insert(name.trim().to_owned(), (constraints, inner.to_owned()));
    }
    let mut out = BTreeMap::new();
    for name in own.keys() {
        let mut cur = name.as_str();
        // Bounded walk: newtype chains are short, and a cycle cannot loop.
        for _ in 0..own.len() {
            let Some((constraints, inner)) = own.get(cur) else {
                break;
            };
            if !constraints.is_empty() {
                out.insert(name.clone(), constraints.clone());
                break;
            }
            cur = inner;
        }
    }
    out
}

/// Copies delegate newtypes' constraints onto the extension-addition fields
/// typed by them (`pub f: Option<Name>,` or `pub f: Name,`) that carry no
/// constraints of their own. Returns the new text and how many fields changed.
pub fn copy_extension_addition_constraints(rust: &str) -> (String, usize) {
    let constraints = newtype_constraints(rust);
    let mut edits = Vec::new();
    for (s, e) in rasn_attributes(rust) {
        let args = attribute_args(&rust[s..e]);
        if !args.iter().any(|a| a == "extension_addition") || args.iter().any(|a| is_constraint(a)) {
            continue;
        }
        let item = next_item(rust, e);
        let Some((_, ty)) = item.strip_prefix("pub ").and_then(|i| i.split_once(": ")) else {
            continue; // a CHOICE alternative: rasn applies the type's own constraints there
        };
        let ty = ty.trim_end_matches(',');
        let ty = ty
            .strip_prefix("Option<")
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or(ty);
        let implied = fixed_size(ty).map(|c| vec![c]);
        let Some(extra) = constraints.get(ty).or(implied.as_ref()) else {
            continue;
        };
        let mut new_args = Vec::with_capacity(args.len() + extra.len());
        for a in args {
            let is_marker = a == "extension_addition";
            new_args.push(a);
            if is_marker {
                new_args.extend(extra.iter().cloned());
            }
        }
        edits.push((s, e, format!("#[rasn({})]", new_args.join(", "))));
    }
    let mut out = rust.to_owned();
    for (s, e, new) in edits.iter().rev() {
        out.replace_range(*s..*e, new);
    }
    (out, edits.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const H235: &str = "H235-SECURITY-MESSAGES DEFINITIONS AUTOMATIC TAGS ::=\nBEGIN\n\
        Password ::= BMPString (SIZE (1..128)) -- Password in a comment\n\
        IV8 ::= OCTET STRING (SIZE(8))\n\
        Params ::= SEQUENCE { iv8 IV8 OPTIONAL, ... }\nEND\n";
    const H245: &str = "MULTIMEDIA-SYSTEM-CONTROL DEFINITIONS AUTOMATIC TAGS ::=\nBEGIN\n\
        Password ::= OCTET STRING (SIZE (1..32))\n\
        IV8 ::= OCTET STRING (SIZE(8))\n\
        TransportAddress ::= CHOICE { a NULL, ... }\n\
        Login ::= SEQUENCE { password Password, iv IV8, addr TransportAddress }\nEND\n";
    const H225: &str = "H323-MESSAGES DEFINITIONS AUTOMATIC TAGS ::=\nBEGIN\nIMPORTS\n\
        SIGNED{}, Password, ClearToken FROM H235-SECURITY-MESSAGES\n\
        DataProtocolCapability FROM MULTIMEDIA-SYSTEM-CONTROL;\n\
        TransportAddress ::= CHOICE { ip NULL, ... }\n\
        Token ::= SEQUENCE { password Password, address TransportAddress, passwordText IA5String }\nEND\n";

    fn modules() -> Vec<Module> {
        [(H225, "H225"), (H245, "H245"), (H235, "H235")]
            .iter()
            .map(|(t, p)| Module {
                text: (*t).to_owned(),
                prefix: (*p).to_owned(),
            })
            .collect()
    }

    #[test]
    fn code_mask_skips_comments_and_strings() {
        let text = "A ::= B -- c, d -- E \"x,--y\" F -- to end\nG";
        let code = code_only(text);
        assert_eq!(code.len(), text.len());
        assert_eq!(
            code.split_whitespace().collect::<Vec<_>>(),
            ["A", "::=", "B", "E", "F", "G"]
        );
    }

    #[test]
    fn module_name_and_defined_types_and_imports() {
        assert_eq!(module_name(H225), "H323-MESSAGES");
        let defined: Vec<_> = defined_types(H245).into_iter().collect();
        assert_eq!(defined, ["IV8", "Login", "Password", "TransportAddress"]);
        assert_eq!(
            imports(H225),
            [
                (
                    "H235-SECURITY-MESSAGES".to_owned(),
                    vec!["SIGNED".into(), "Password".into(), "ClearToken".into()]
                ),
                (
                    "MULTIMEDIA-SYSTEM-CONTROL".to_owned(),
                    vec!["DataProtocolCapability".into()]
                ),
            ]
        );
    }

    #[test]
    fn rename_touches_whole_references_in_code_only() {
        let renames = BTreeMap::from([("Password".to_owned(), "H245Password".to_owned())]);
        let text = "a Password, b PasswordX, c X-Password, d Password-- Password\n";
        assert_eq!(
            rename_references(text, &renames),
            "a H245Password, b PasswordX, c X-Password, d H245Password-- Password\n"
        );
    }

    #[test]
    fn clashes_renamed_in_all_but_the_first_module_and_in_importers() {
        let mut m = modules();
        let report = resolve_name_clashes(&mut m);
        // H.225 keeps TransportAddress; H.245 renames its own; H.235 renames
        // Password and IV8 (defined by H.245 first), and H.225 follows the
        // Password it imports from H.235.
        assert!(m[0].text.contains("IMPORTS\nSIGNED{}, H235Password, ClearToken"));
        assert!(m[0]
            .text
            .contains("password H235Password, address TransportAddress, passwordText"));
        assert!(m[1].text.contains("H245TransportAddress ::= CHOICE"));
        assert!(m[1].text.contains("Password ::= OCTET STRING"));
        assert!(m[1]
            .text
            .contains("password Password, iv IV8, addr H245TransportAddress"));
        assert!(m[2]
            .text
            .contains("H235Password ::= BMPString (SIZE (1..128)) -- Password in a comment"));
        assert!(m[2].text.contains("H235IV8 ::= OCTET"));
        assert!(m[2].text.contains("iv8 H235IV8 OPTIONAL"));
        assert_eq!(report.len(), 4, "{report:?}");
        // A second run finds nothing left to rename.
        assert!(resolve_name_clashes(&mut m).is_empty());
    }

    #[test]
    fn extension_additions_become_optional() {
        let text = "A ::= SEQUENCE {\n  a INTEGER,\n  b BOOLEAN,\n  ...,\n  c BOOLEAN, -- comment, with comma\n  \
            d SEQUENCE { x INTEGER, ..., y NULL } OPTIONAL,\n  e INTEGER DEFAULT 3,\n  \
            f IA5String (SIZE(1..4)) (FROM(\"0,1\")),\n  g SEQUENCE OF SEQUENCE { p NULL }\n}\n\
            B ::= CHOICE { a NULL, ..., b NULL }\n\
            C ::= SEQUENCE { a NULL, ..., b NULL, ..., c NULL }\n";
        let (out, n) = optional_extension_additions(text);
        assert_eq!(n, 5);
        assert_eq!(
            out,
            "A ::= SEQUENCE {\n  a INTEGER,\n  b BOOLEAN,\n  ...,\n  c BOOLEAN OPTIONAL, -- comment, with comma\n  \
            d SEQUENCE { x INTEGER, ..., y NULL OPTIONAL } OPTIONAL,\n  e INTEGER DEFAULT 3,\n  \
            f IA5String (SIZE(1..4)) (FROM(\"0,1\")) OPTIONAL,\n  g SEQUENCE OF SEQUENCE { p NULL } OPTIONAL\n}\n\
            B ::= CHOICE { a NULL, ..., b NULL }\n\
            C ::= SEQUENCE { a NULL, ..., b NULL OPTIONAL, ..., c NULL }\n"
        );
        // Idempotent.
        assert_eq!(optional_extension_additions(&out), (out.clone(), 0));
    }

    const RUST: &str = r#"
    #[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq)]
    #[rasn(delegate, value("1..=4294967295"))]
    pub struct TimeToLive(pub u32);
    #[doc = " a chain without constraints of its own"]
    #[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq)]
    #[rasn(delegate)]
    pub struct Ttl2(pub TimeToLive);
    #[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq)]
    #[rasn(
        delegate,
        identifier = "X",
        size("1..=128"),
        from("\u{30}", "\u{31}")
    )]
    pub struct Digits(pub Ia5String);
    #[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq)]
    #[rasn(delegate)]
    pub struct IV16(pub FixedOctetString<16usize>);
    pub struct Rrq {
        #[rasn(identifier = "timeToLive")]
        pub root: Option<TimeToLive>,
        #[rasn(extension_addition, identifier = "timeToLive")]
        pub time_to_live: Option<TimeToLive>,
        #[rasn(extension_addition)]
        pub ttl2: Ttl2,
        #[rasn(extension_addition, size("1..=4"))]
        pub digits: Option<Digits>,
        #[rasn(extension_addition)]
        pub more: Option<Digits>,
        #[rasn(extension_addition)]
        pub seq: Option<SequenceOf<Digits>>,
        #[rasn(extension_addition)]
        pub iv16: Option<IV16>,
        #[rasn(extension_addition)]
        pub guid: FixedOctetString<16usize>,
    }
    pub enum Alias {
        #[rasn(extension_addition)]
        digits(Digits),
    }
"#;

    #[test]
    fn newtype_constraints_follow_chains() {
        let c = newtype_constraints(RUST);
        assert_eq!(c["TimeToLive"], ["value(\"1..=4294967295\")"]);
        assert_eq!(c["Ttl2"], ["value(\"1..=4294967295\")"]);
        assert_eq!(c["Digits"], ["size(\"1..=128\")", "from(\"\\u{30}\", \"\\u{31}\")"]);
        assert_eq!(c["IV16"], ["size(\"16\")"]);
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn constraints_copied_onto_extension_addition_fields_only() {
        let (out, n) = copy_extension_addition_constraints(RUST);
        assert_eq!(n, 5);
        assert!(out.contains("#[rasn(extension_addition, size(\"16\"))]\n        pub iv16"));
        assert!(out.contains("#[rasn(extension_addition, size(\"16\"))]\n        pub guid"));
        assert!(out.contains("#[rasn(identifier = \"timeToLive\")]\n        pub root"));
        assert!(out.contains(
            "#[rasn(extension_addition, value(\"1..=4294967295\"), identifier = \"timeToLive\")]\n        pub time_to_live"
        ));
        assert!(out.contains("#[rasn(extension_addition, value(\"1..=4294967295\"))]\n        pub ttl2: Ttl2"));
        assert!(out.contains("#[rasn(extension_addition, size(\"1..=4\"))]\n        pub digits"));
        assert!(out.contains(
            "#[rasn(extension_addition, size(\"1..=128\"), from(\"\\u{30}\", \"\\u{31}\"))]\n        pub more"
        ));
        assert!(out.contains("#[rasn(extension_addition)]\n        pub seq"));
        assert!(out.contains("#[rasn(extension_addition)]\n        digits(Digits)"));
        // Idempotent: fields that carry constraints are left alone.
        assert_eq!(copy_extension_addition_constraints(&out), (out.clone(), 0));
    }
}
