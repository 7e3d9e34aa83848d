"""lora-registry's built-in architecture plugins: llama, mistral, phi, declarative entries, and the generic fallback."""
