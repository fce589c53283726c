"""`modelsign completion bash|zsh|fish`: shell completion generated from the argparse tree,
so it never falls behind the commands (every command, subcommand, option and choice).

bash gets associative arrays keyed by the command path ("modelsign", "modelsign approval"...);
zsh runs the bash function through `bashcompinit`; fish gets one `complete` line per word.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

SHELLS = ("bash", "zsh", "fish")


@dataclass
class Option:
    flags: list[str]
    takes_value: bool
    choices: list[str]
    is_path: bool
    help: str


@dataclass
class Command:
    path: tuple[str, ...]
    subcommands: dict[str, str] = field(default_factory=dict)  # name -> help
    options: list[Option] = field(default_factory=list)
    values: list[str] = field(default_factory=list)  # choices of positional arguments (completion's shells)


# The scripts write command names, flags and choices as words, unquoted where the shells need
# them bare (fish evaluates `-a` strings): only words no shell reads specially may reach them.
_SAFE_WORD = re.compile(r"-{0,2}[A-Za-z0-9][A-Za-z0-9._/:@+=,-]*")


def _word(text: str, what: str) -> str:
    if not _SAFE_WORD.fullmatch(text):
        raise ValueError(f"{what} {text!r} cannot be offered for completion: use letters, digits and ._/:@+=,- only")
    return text


def command_tree(parser: argparse.ArgumentParser) -> list[Command]:
    """Every command of `parser`, depth first, the root (path ()) first. Every name, flag and
    choice is a plain word (`_SAFE_WORD`), else ValueError."""
    found: list[Command] = []
    stack: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = [((), parser)]
    while stack:
        path, current = stack.pop()
        command = Command(path)
        children: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = []
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
                for name, sub in action.choices.items():
                    command.subcommands[_word(name, "command")] = helps.get(name, "")
                    children.append(((*path, name), sub))
            elif action.option_strings:
                if action.help == argparse.SUPPRESS:
                    continue
                command.options.append(Option([_word(flag, "option") for flag in action.option_strings], action.nargs != 0,
                                              [_word(str(c), "choice") for c in action.choices or []], action.type is Path, action.help or ""))
            elif action.choices:
                command.values += [_word(str(c), "choice") for c in action.choices]
        found.append(command)
        stack += reversed(children)
    return found


def _words(values: list[str]) -> str:
    return shlex.quote(" ".join(values))


def bash_script(parser: argparse.ArgumentParser) -> str:
    commands = command_tree(parser)
    lines = ["# modelsign completion for bash: source <(modelsign completion bash)",
             "declare -gA _modelsign_commands=() _modelsign_words=() _modelsign_values=()"]

    def entry(table: str, key: str, value: list[str]) -> None:
        # The key goes through a variable: zsh keeps quotes inside `table['a b']=` as part of the key.
        lines.append(f"_modelsign_key={shlex.quote(key)}; _modelsign_{table}[$_modelsign_key]={_words(value)}")

    for command in commands:
        key = " ".join(("modelsign", *command.path))
        entry("commands", key, list(command.subcommands))
        entry("words", key, list(command.subcommands) + command.values + [flag for option in command.options for flag in option.flags])
        for option in command.options:
            if option.takes_value:
                value = option.choices or (["__file__"] if option.is_path else ["__any__"])
                for flag in option.flags:
                    entry("values", f"{key} {flag}", value)
    lines += ["unset _modelsign_key", _BASH_FUNCTION]
    return "\n".join(lines) + "\n"


# Filters the words itself (zsh's compgen emulation does not); a path, or no match at all, is
# left to the shell's own file completion (`-o default`). Runs under bash and under zsh's
# bashcompinit (sh emulation), so it avoids names zsh ties to other things (`path`).
_BASH_FUNCTION = r"""_modelsign() {
    local cur="${COMP_WORDS[COMP_CWORD]}" command_path=modelsign word i offered
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        if [[ " ${_modelsign_commands[$command_path]} " == *" $word "* ]]; then
            command_path="$command_path $word"
        fi
    done
    local prev="${COMP_WORDS[COMP_CWORD-1]}"
    if [[ "$prev" == -* && -n "${_modelsign_values[$command_path $prev]+set}" ]]; then
        offered="${_modelsign_values[$command_path $prev]}"
        if [[ "$offered" == __file__ || "$offered" == __any__ ]]; then
            return 0
        fi
    else
        offered="${_modelsign_words[$command_path]}"
    fi
    for word in $offered; do
        if [[ "$word" == "$cur"* ]]; then
            COMPREPLY+=("$word")
        fi
    done
    return 0
}
complete -o filenames -o default -F _modelsign modelsign"""


def zsh_script(parser: argparse.ArgumentParser) -> str:
    return ("# modelsign completion for zsh: source <(modelsign completion zsh)\n"
            "autoload -U +X bashcompinit && bashcompinit\n" + bash_script(parser))


def _fish_text(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish_script(parser: argparse.ArgumentParser) -> str:
    commands = command_tree(parser)
    every = sorted({name for command in commands for name in command.subcommands})
    lines = ["# modelsign completion for fish: modelsign completion fish > ~/.config/fish/completions/modelsign.fish"]
    for command in commands:
        # this command is the last one given: its path is seen, and none of its subcommands yet
        if command.path:
            condition = " && ".join(f"__fish_seen_subcommand_from {name}" for name in command.path)
        else:
            condition = f"not __fish_seen_subcommand_from {' '.join(every)}"
        if command.subcommands:
            condition += f" && not __fish_seen_subcommand_from {' '.join(command.subcommands)}"
        if command.subcommands or command.values:  # a word from the list is due, not a file (a leaf's target may be a path)
            lines.append(f"complete -c modelsign -n {_fish_text(condition)} -f")
        for name, helptext in command.subcommands.items():
            lines.append(f"complete -c modelsign -n {_fish_text(condition)} -a {name} -d {_fish_text(helptext[:80])}")
        for value in command.values:
            lines.append(f"complete -c modelsign -n {_fish_text(condition)} -a {value}")
        for option in command.options:
            flags = " ".join(f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}" for flag in option.flags)
            value = (f" -x -a {_fish_text(' '.join(option.choices))}" if option.choices else " -r -F" if option.is_path
                     else " -x" if option.takes_value else "")
            lines.append(f"complete -c modelsign -n {_fish_text(condition)} {flags}{value} -d {_fish_text(option.help[:80])}")
    return "\n".join(lines) + "\n"


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    return {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}[shell](parser)
