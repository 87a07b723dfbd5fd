//! "Did you mean" hints: the one edit distance every hint (policy files and test suites) is measured with.
//!
//! Hints only ever add words to an error or a warning; they never decide whether a load succeeds.
//! Their cost is bounded: long words and long candidate lists are cut, and one load compares at most
//! [`MAX_COMPARISONS`] pairs of words (a set of many mistakes gets hints for its first ones), as a hint
//! is a courtesy.

use std::cell::Cell;

/// The most edits a hint may be away from the word (one for words of three letters or fewer).
pub const MAX_DISTANCE: usize = 2;
/// Words longer than this get no hint: the distance costs the product of the two lengths.
const MAX_WORD: usize = 48;
/// The most pairs of words one load compares for hints.
const MAX_COMPARISONS: usize = 200_000;

thread_local! {
    /// Comparisons left to the load running on this thread (a load compiles on one thread).
    static BUDGET: Cell<usize> = const { Cell::new(MAX_COMPARISONS) };
}

/// Gives the load about to run on this thread its whole budget of comparisons.
pub fn reset_budget() {
    BUDGET.with(|b| b.set(MAX_COMPARISONS));
}

/// Takes one comparison from the budget; false when none is left.
fn spend() -> bool {
    BUDGET.with(|b| match b.get() {
        0 => false,
        left => {
            b.set(left - 1);
            true
        }
    })
}
/// The most candidates one hint looks at.
const MAX_CANDIDATES: usize = 2_000;
/// How many known names are listed when none is close.
const LISTED: usize = 5;

/// The edit distance between `a` and `b` (insertions, deletions, substitutions and swaps of two
/// neighbouring characters each count one), or `None` when it exceeds `limit` or a word is too long.
pub fn distance(a: &str, b: &str, limit: usize) -> Option<usize> {
    // A word of more bytes than this has more than MAX_WORD characters: refused before it is copied.
    if a.len().max(b.len()) > MAX_WORD * 4 {
        return None;
    }
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > MAX_WORD || b.len() > MAX_WORD || a.len().abs_diff(b.len()) > limit {
        return None;
    }
    // Three rows of the optimal string alignment table.
    let mut before: Vec<usize> = Vec::new();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let del = previous.get(j + 1).map_or(usize::MAX, |v| v + 1);
            let ins = row.get(j).map_or(usize::MAX, |v| v + 1);
            let sub = previous.get(j).map_or(usize::MAX, |v| v + cost);
            let mut best = del.min(ins).min(sub);
            let swapped = i > 0 && j > 0 && a.get(i - 1) == Some(cb) && b.get(j - 1) == Some(ca);
            if swapped && let Some(v) = before.get(j - 1) {
                best = best.min(v + 1);
            }
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = best;
            }
        }
        before = std::mem::replace(&mut previous, row);
    }
    previous.last().copied().filter(|&d| d <= limit)
}

/// The closest of `known` to `word`, if one is close enough (and is not `word` itself).
pub fn closest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = if word.chars().count() <= 3 {
        1
    } else {
        MAX_DISTANCE
    };
    let mut best: Option<(usize, &str)> = None;
    for candidate in known.into_iter().take(MAX_CANDIDATES) {
        if candidate == word {
            continue;
        }
        if !spend() {
            break;
        }
        if let Some(d) = distance(word, candidate, limit)
            && best.is_none_or(|(b, _)| d < b)
        {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, name)| name)
}

/// ` (did you mean 'x'?)` for the closest known name, else ` (known: a, b, c, ...)`, else nothing.
pub fn suggest<'a>(word: &str, known: impl IntoIterator<Item = &'a str> + Clone) -> String {
    if let Some(name) = closest(word, known.clone()) {
        return format!(" (did you mean '{name}'?)");
    }
    let mut names: Vec<&str> = known.into_iter().take(MAX_CANDIDATES).collect();
    names.sort_unstable();
    names.dedup();
    match names.len() {
        0 => String::new(),
        n if n <= LISTED => format!(" (known: {})", names.join(", ")),
        n => format!(
            " (known: {}, and {} more)",
            names.get(..LISTED).unwrap_or_default().join(", "),
            n - LISTED
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn distances_count_edits_and_swaps() {
        assert_eq!(distance("delet", "delete", 2), Some(1));
        assert_eq!(distance("documnet", "document", 2), Some(1));
        assert_eq!(distance("efect", "effect", 2), Some(1));
        assert_eq!(distance("acions", "actions", 2), Some(1));
        assert_eq!(distance("same", "same", 2), Some(0));
        assert_eq!(distance("read", "write", 2), None);
        assert_eq!(distance("", "ab", 2), Some(2));
    }

    #[test]
    fn hints_name_the_closest_or_list_some_known_names() {
        let kinds = ["document", "folder"];
        assert_eq!(suggest("documnet", kinds), " (did you mean 'document'?)");
        assert_eq!(suggest("zzz", kinds), " (known: document, folder)");
        assert_eq!(suggest("zzz", [] as [&str; 0]), "");
        let many = ["a1", "b1", "c1", "d1", "e1", "f1", "g1"];
        assert_eq!(
            suggest("zzzz", many),
            " (known: a1, b1, c1, d1, e1, and 2 more)"
        );
        assert_eq!(closest("ab", ["xyz"]), None);
        assert_eq!(closest("editr", ["editor", "editors"]), Some("editor"));
    }

    #[test]
    fn a_spent_budget_gives_no_hint_until_the_next_load() {
        BUDGET.with(|b| b.set(0));
        assert_eq!(closest("documnet", ["document"]), None);
        reset_budget();
        assert_eq!(closest("documnet", ["document"]), Some("document"));
    }

    #[test]
    fn long_words_get_no_hint() {
        let long = "a".repeat(MAX_WORD + 1);
        assert_eq!(
            closest(&long, [long.as_str()].into_iter().map(|s| &s[1..])),
            None
        );
    }
}
