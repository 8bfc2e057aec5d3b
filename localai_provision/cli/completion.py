"""`localai completion bash|zsh`: a completion script for the shell, made from the parser
itself (commands and each command's flags are never listed twice), and
`localai completion names FILE`, which the scripts call for `--limit`'s host and group names
(it reads the site file only: no host is reached).

    eval "$(localai completion bash)"        # in ~/.bashrc
    eval "$(localai completion zsh)"         # in ~/.zshrc, after compinit
"""

from __future__ import annotations

import argparse

from localai_provision.cli.exits import EXIT_OK
from localai_provision.cli.render import Output

_BASH = r"""# localai completion for bash (made by `localai completion bash`)
_localai() {
  local cur prev cmd words
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  cmd="${COMP_WORDS[1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "@COMMANDS@" -- "$cur"))
    return
  fi
  if [ "$COMP_CWORD" -eq 2 ] && [[ "$cur" != -* ]]; then
    case "$cmd" in
@WORDS@
      *) COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
    [ "${#COMPREPLY[@]}" -gt 0 ] && return
  fi
  case "$prev" in
    --limit|-l)
      local file="" w
      for w in "${COMP_WORDS[@]:2}"; do
        case "$w" in -*) ;; *) [ -f "$w" ] && { file="$w"; break; } ;; esac
      done
      [ -n "$file" ] || return
      local names
      names="$(localai completion names "$file" 2>/dev/null)"
      COMPREPLY=($(compgen -W "$names" -- "$cur"))
      return
      ;;
  esac
  if [[ "$cur" == -* ]]; then
    case "$cmd" in
@FLAGS@
    esac
    return
  fi
  COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _localai localai
"""

_ZSH = r"""#compdef localai
# localai completion for zsh (made by `localai completion zsh`)
_localai() {
  local cmd=${words[2]} cur=${words[CURRENT]} prev=${words[CURRENT-1]}
  if (( CURRENT == 2 )); then
    compadd -- @COMMANDS@
    return
  fi
  if (( CURRENT == 3 )) && [[ $cur != -* ]]; then
    case $cmd in
@WORDS@
      (*) _files ;;
    esac
    return
  fi
  if [[ $prev == --limit || $prev == -l ]]; then
    local w file=""
    for w in ${words[3,-1]}; do
      [[ $w != -* && -f $w ]] && { file=$w; break }
    done
    [[ -n $file ]] && compadd -- ${(f)"$(localai completion names $file 2>/dev/null)"}
    return
  fi
  if [[ $cur == -* ]]; then
    case $cmd in
@FLAGS@
    esac
    return
  fi
  _files
}
compdef _localai localai
"""


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    own = {o for a in parser._actions for o in a.option_strings if o.startswith("--")}
    return own.union(*(_flags(sub) for sub in _subcommands(parser).values()))


def _first_words(parser: argparse.ArgumentParser) -> list[str]:
    """What a command's first argument can be, when it is a fixed word (`import ansible`,
    `completion bash`)."""
    subs = _subcommands(parser)
    if subs:
        return list(subs)
    positional = [a for a in parser._actions if not a.option_strings and a.choices]
    return [str(c) for c in positional[0].choices] if positional else []  # type: ignore[union-attr]


def commands_and_flags(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Each command with its flags, as the parser defines them."""
    return {name: sorted(_flags(sub)) for name, sub in _subcommands(parser).items()}


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    subs = _subcommands(parser)
    words = {name: _first_words(sub) for name, sub in subs.items()}
    if shell == "bash":
        flag_case = '      {0}) COMPREPLY=($(compgen -W "{1}" -- "$cur")) ;;'
        template = _BASH
    else:
        flag_case = "      ({0}) compadd -- {1} ;;"
        template = _ZSH
    flags = "\n".join(
        flag_case.format(name, " ".join(f)) for name, f in commands_and_flags(parser).items()
    )
    firsts = "\n".join(flag_case.format(name, " ".join(w)) for name, w in words.items() if w)
    return (
        template.replace("@COMMANDS@", " ".join(subs))
        .replace("@FLAGS@", flags)
        .replace("@WORDS@", firsts)
    )


def cmd_completion(args: argparse.Namespace, io: Output) -> int:
    if args.shell == "names":
        from localai_provision.errors import UsageError
        from localai_provision.site import load_site

        if not args.file:
            raise UsageError("completion names needs the site FILE")
        site = load_site(args.file)
        for name in [*site.hosts, *site.groups]:
            io.line(name)
        return EXIT_OK
    from localai_provision.cli.parser import build_parser

    io.out.write(script(args.shell, build_parser()))
    return EXIT_OK
