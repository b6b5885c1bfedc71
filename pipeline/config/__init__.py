"""Task configuration: `Config`, its fields, subtask fields and registries, overrides.

What lives here
---------------
- `field`: `ConfigBase` (what a field knows of the config that owns it) and `Field`, the
  descriptor protocol every field kind implements, with the helpers they share;
- `value_fields`: ranges, choices, lists, dicts and nested configs;
- `configurable_fields`: retargetable subtasks and `Registry` choices;
- `overrides`: ``-c field=value`` strings, YAML and (explicitly named) Python override files;
- `config`: `Config` itself, which drives the fields.

Layers, each importing only those below it: `config` -> `overrides` -> `configurable_fields`
-> `value_fields` -> `field` (field modules know configs only through `ConfigBase`). This
package is the bottom of `pipeline`: it imports nothing of ours but `pipeline._errors`.
Every public name is re-exported here (``from pipeline.config import X``).
"""

from .config import (
    ChoiceField,
    Config,
    ConfigDict,
    ConfigField,
    ConfigList,
    ConfigurableField,
    ConfigurableInstance,
    DictField,
    DuplicateRegistrationError,
    Field,
    FieldValidationError,
    FrozenConfigError,
    ListField,
    RangeField,
    Registry,
    RegistryField,
    RegistryInstance,
    UnknownConfigFieldError,
    applyOverrides,
    loadPythonOverrides,
    loadYamlOverrides,
    makeRegistry,
    parseOverrideString,
)
from .field import ConfigBase

__all__ = [
    "ChoiceField",
    "Config",
    "ConfigBase",
    "ConfigDict",
    "ConfigField",
    "ConfigList",
    "ConfigurableField",
    "ConfigurableInstance",
    "DictField",
    "DuplicateRegistrationError",
    "Field",
    "FieldValidationError",
    "FrozenConfigError",
    "ListField",
    "RangeField",
    "Registry",
    "RegistryField",
    "RegistryInstance",
    "UnknownConfigFieldError",
    "applyOverrides",
    "loadPythonOverrides",
    "loadYamlOverrides",
    "makeRegistry",
    "parseOverrideString",
]
