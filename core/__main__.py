"""``python -m lora_registry``."""

from lora_registry.cli import main

main()
