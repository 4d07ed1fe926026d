"""Reading commentaries: front matter, Markdown, and the model of a commentary and an issue."""
