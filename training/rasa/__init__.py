"""Migrating a Rasa project to a supportbot bot folder: `project` reads it, `plan` decides what each Rasa
concept becomes (or why it cannot), `answers` turns responses into answer templates, `report` writes
MIGRATION.md."""
