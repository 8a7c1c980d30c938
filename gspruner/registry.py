"""Methods registered by name (nerfstudio's method registry, brush's one-job crates): a name -> config class
table whose entries the command line turns into tyro subcommands (`strategy:NAME`, `prune:NAME`) at parse time."""

from __future__ import annotations

from typing import Annotated, Union

import tyro


class Registry(dict):
    """name -> config class, all subclasses of `base`."""

    def __init__(self, base: type, entries: dict[str, type]):
        super().__init__()
        self.base = base
        for name, config in entries.items():
            self.register(name, config)

    def register(self, name: str, config: type) -> type:
        """Make `config` selectable by `name`."""
        if not (isinstance(config, type) and issubclass(config, self.base)):
            raise TypeError(f"{config!r} is not a {self.base.__name__} subclass")
        self[name] = config
        return config

    def name_of(self, config) -> str:
        """The registered name of a config instance's class."""
        for name, cls in self.items():
            if type(config) is cls:
                return name
        raise KeyError(f"{type(config).__name__} is not registered")

    def union(self, keep=lambda config: True):
        """The tyro type choosing one of the registered configs that `keep` accepts: Union[Annotated[C,
        tyro.conf.subcommand(NAME)], ...], tyro's subcommands `FIELD:NAME` (each with its own field defaults; a
        default instance would turn values its `__post_init__` fills into flags)."""
        return Union[tuple(Annotated[cls, tyro.conf.subcommand(name)] for name, cls in self.items() if keep(cls))]
