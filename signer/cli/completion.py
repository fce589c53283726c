"""`modelsign completion bash|zsh|fish`: shell completion generated from the argparse tree,
so it never falls behind the commands (every command, subcommand, option and choice).

bash gets associative arrays keyed by the command path ("modelsign", "modelsign approval"...);
zsh runs the bash function through `bashcompinit`; fish gets one `complete` line per word.
"""

from __future__ import annotations

import argparse
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


def command_tree(parser: argparse.ArgumentParser) -> list[Command]:
    """Every command of `parser`, depth first, the root (path ()) first."""
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
                    command.subcommands[name] = helps.get(name, "")
                    children.append(((*path, name), sub))
            elif action.option_strings:
                if action.help == argparse.SUPPRESS:
                    continue
                command.options.append(Option(list(action.option_strings), action.nargs != 0, [str(c) for c in action.choices or []],
                                              action.type is Path, action.help or ""))
            elif action.choices:
                command.values += [str(c) for c in action.choices]
        found.append(command)
        stack += reversed(children)
    return found


def _words(values: list[str]) -> str:
    return shlex.quote(" ".join(values))


def bash_script(parser: argparse.ArgumentParser) -> str:
    commands = command_tree(parser)
    lines = ["# modelsign completion for bash: source <(modelsign completion bash)",
             "declare -gA _modelsign_commands=() _modelsign_words=() _modelsign_values=()"]
    for command in commands:
        key = shlex.quote(" ".join(("modelsign", *command.path)))
        lines.append(f"_modelsign_commands[{key}]={_words(list(command.subcommands))}")
        words = list(command.subcommands) + command.values + [flag for option in command.options for flag in option.flags]
        lines.append(f"_modelsign_words[{key}]={_words(words)}")
        for option in command.options:
            if option.takes_value:
                value = option.choices or (["__file__"] if option.is_path else ["__any__"])
                for flag in option.flags:
                    lines.append(f"_modelsign_values[{shlex.quote(' '.join(('modelsign', *command.path, flag)))}]={_words(value)}")
    lines.append(_BASH_FUNCTION)
    return "\n".join(lines) + "\n"


_BASH_FUNCTION = r"""_modelsign() {
    local cur="${COMP_WORDS[COMP_CWORD]}" path=modelsign word i
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        if [[ " ${_modelsign_commands[$path]} " == *" $word "* ]]; then
            path="$path $word"
        fi
    done
    local prev="${COMP_WORDS[COMP_CWORD-1]}"
    if [[ "$prev" == -* && -n "${_modelsign_values[$path $prev]+set}" ]]; then
        local values="${_modelsign_values[$path $prev]}"
        case "$values" in
            __file__) COMPREPLY=($(compgen -f -- "$cur")) ;;
            __any__) ;;
            *) COMPREPLY=($(compgen -W "$values" -- "$cur")) ;;
        esac
        return 0
    fi
    COMPREPLY=($(compgen -W "${_modelsign_words[$path]}" -- "$cur"))
    if [[ ${#COMPREPLY[@]} -eq 0 && "$cur" != -* ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
    return 0
}
complete -o filenames -F _modelsign modelsign"""


def zsh_script(parser: argparse.ArgumentParser) -> str:
    return ("# modelsign completion for zsh: source <(modelsign completion zsh)\n"
            "autoload -U +X bashcompinit && bashcompinit\n" + bash_script(parser))


def _fish_text(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish_script(parser: argparse.ArgumentParser) -> str:
    commands = command_tree(parser)
    every = sorted({name for command in commands for name in command.subcommands})
    lines = ["# modelsign completion for fish: modelsign completion fish > ~/.config/fish/completions/modelsign.fish", "complete -c modelsign -f"]
    for command in commands:
        # this command is the last one given: its path is seen, and none of its subcommands yet
        if command.path:
            condition = " && ".join(f"__fish_seen_subcommand_from {name}" for name in command.path)
        else:
            condition = f"not __fish_seen_subcommand_from {' '.join(every)}"
        if command.subcommands:
            condition += f" && not __fish_seen_subcommand_from {' '.join(command.subcommands)}"
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
