"""What every layer shares: settings, SQLite, scenario folders, access rules, the model catalog and the Lab's vocabulary (modes, Answer, Source, Decoding). Imports nothing heavy."""
