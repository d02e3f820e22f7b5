//! The remote command line. ssh joins its arguments with spaces and the
//! guest's shell splits them again, which mangles `sh -c 'exit 3'`. So one
//! argument is taken as a shell command line (`'ls | wc -l'`), and several
//! are quoted so the guest sees exactly that argv.

pub fn command_line(args: &[String]) -> String {
    match args {
        [one] => one.clone(),
        many => many.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
    }
}

fn quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn one_argument_is_a_shell_line() {
        assert_eq!(command_line(&s(&["ls | wc -l"])), "ls | wc -l");
    }

    #[test]
    fn several_arguments_keep_their_boundaries() {
        assert_eq!(command_line(&s(&["uname", "-r"])), "uname -r");
        assert_eq!(command_line(&s(&["sh", "-c", "exit 3"])), "sh -c 'exit 3'");
        assert_eq!(
            command_line(&s(&["echo", "it's", ""])),
            r"echo 'it'\''s' ''"
        );
        assert_eq!(
            command_line(&s(&["echo", "$HOME", "a;b"])),
            "echo '$HOME' 'a;b'"
        );
    }
}
