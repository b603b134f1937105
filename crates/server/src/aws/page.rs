//! Pagination as the AWS models page (`MaxRecords`/`MaxResults` and `NextToken`/`Marker`):
//! the items are ordered by a key, and a token names the first key of the next page, so a page
//! stays right when items are added or removed between calls (a removed item is skipped, not
//! repeated). Tokens are opaque to clients: hex of the key, so any key text survives a form body.

use super::AwsError;

/// One page of `items` (ordered by `key`), starting at `token`, at most `max` long; the token
/// of the next page, if any.
pub fn page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> &str,
    max: Option<i64>,
    limit: usize,
    token: Option<&str>,
    max_name: &str,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    let max = match max {
        None => limit,
        Some(n) if n >= 1 && n as u64 <= limit as u64 => n as usize,
        Some(n) => {
            return Err(AwsError::validation(format!(
                "{max_name}: {n} is not between 1 and {limit}"
            )))
        }
    };
    items.sort_by(|a, b| key(a).cmp(key(b)));
    let start = match token {
        None => 0,
        Some(t) => {
            let from = decode(t).ok_or_else(|| {
                AwsError::validation(format!(
                    "NextToken `{t}` is not a token this endpoint gave out"
                ))
            })?;
            items.partition_point(|i| key(i) < from.as_str())
        }
    };
    let mut rest = items.split_off(start);
    let next = (rest.len() > max).then(|| encode(key(&rest[max])));
    rest.truncate(max);
    Ok((rest, next))
}

fn encode(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode(token: &str) -> Option<String> {
    if token.is_empty() || !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&'static str]) -> Vec<&'static str> {
        v.to_vec()
    }

    #[test]
    fn pages_walk_every_item_once_in_key_order() {
        let all = names(&["c", "a", "e", "b", "d"]);
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let (items, next) = page(
                all.clone(),
                |s| s,
                Some(2),
                100,
                token.as_deref(),
                "MaxRecords",
            )
            .unwrap();
            pages += 1;
            seen.extend(items);
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
        assert_eq!(pages, 3);
    }

    #[test]
    fn a_token_survives_changes_between_calls() {
        let (first, next) =
            page(names(&["a", "b", "c", "d"]), |s| s, Some(2), 100, None, "M").unwrap();
        assert_eq!(first, ["a", "b"]);
        // "c" was deleted and "bb" added before the next call: the page starts after "b".
        let (second, next) = page(
            names(&["a", "b", "bb", "d"]),
            |s| s,
            Some(2),
            100,
            next.as_deref(),
            "M",
        )
        .unwrap();
        assert_eq!(second, ["d"]);
        assert_eq!(next, None);
    }

    #[test]
    fn bad_sizes_and_tokens_are_refused_by_name() {
        let cases: &[(Option<i64>, Option<&str>, &str)] = &[
            (Some(0), None, "MaxRecords: 0 is not between 1 and 100"),
            (Some(101), None, "MaxRecords: 101 is not between 1 and 100"),
            (None, Some("zz"), "NextToken `zz` is not a token"),
            (None, Some("abc"), "NextToken `abc` is not a token"),
            (None, Some(""), "NextToken `` is not a token"),
        ];
        for (max, token, want) in cases {
            let e = page(names(&["a"]), |s| s, *max, 100, *token, "MaxRecords").unwrap_err();
            assert!(e.message.contains(want), "{}", e.message);
        }
    }
}
