// Every visible text of the page: its colour's contrast against the background painted under it
// (WCAG's relative luminance), as {tag, cls, text, ratio}.
() => {
  const luminance = (rgb) => {
    const [r, g, b] = rgb.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const channels = (css) => css.match(/[\d.]+/g).map(Number);
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const c = channels(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const found = [];
  for (const element of document.body.querySelectorAll('*')) {
    const own = [...element.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || element.closest('.preheader') || !element.getClientRects().length) continue;
    const fg = luminance(channels(getComputedStyle(element).color).slice(0, 3));
    const bg = luminance(background(element));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    found.push({tag: element.tagName, cls: element.className, text: element.textContent.trim().slice(0, 30), ratio});
  }
  return found;
}
