"""`python -m components.config`: Pulumi.yaml's `config:` block; `--markdown`: the README's
configuration reference."""

import sys

import yaml

from components.config.docs import markdown_reference, pulumi_yaml_config

if sys.argv[1:] == ["--markdown"]:
    print(markdown_reference())
else:
    print(yaml.safe_dump({"config": pulumi_yaml_config()}, sort_keys=False, width=100))
