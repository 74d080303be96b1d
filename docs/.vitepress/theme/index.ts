// The default theme, with tables that fit the page (see style.css).
import DefaultTheme from 'vitepress/theme';
import './style.css';

export default DefaultTheme;
