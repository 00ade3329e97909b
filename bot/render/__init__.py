"""Pure functions that turn engine results into Discord message content and embeds.

`text` holds the Discord-safe primitives (escaping, links, limits, timestamps); each other
module renders one kind of result beside the cogs that send it: `answer` (`/ask`),
`articles`, `news` (`/timeline`, `/whatsnew`), `follows`, `admin` (`/stats`, reindex, feeds).
The words for an answer's facts come from articlebot.wording, shared with the CLI.
"""
