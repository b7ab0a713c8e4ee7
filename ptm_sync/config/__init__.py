"""The configuration (DESIGN §8): TOML in, a frozen, validated Config out."""
