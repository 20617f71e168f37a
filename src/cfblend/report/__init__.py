"""Stage 6: what a run ends in, read off the artifacts: the leaderboard (`leaderboard`), the
analyses (`analysis`), their figures (`plots`), the one-page report (`page`), all written by
`run`; `screenshot` renders the page in headless Chromium."""
